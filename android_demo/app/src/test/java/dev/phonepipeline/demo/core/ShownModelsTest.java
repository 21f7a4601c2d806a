package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

public class ShownModelsTest {
    private static final String PICTURE_IN = "{\"name\": \"input\", \"shape\": [1, 28, 28, 1], \"dtype\": \"float32\","
            + " \"layout\": \"NHWC\"}";
    private static final String SCORES_OUT = "{\"name\": \"logits\", \"shape\": [1, 10], \"dtype\": \"float32\"}";

    /** The fixture with tensor lists on its first artifact, as the pipeline's release writes them. */
    private static String withTensors(String inputs, String outputs) {
        String first = "\"sha256\": \"" + Fixtures.SHA + "\"}";
        int at = Fixtures.metadata().indexOf(first);
        return Fixtures.metadata().substring(0, at) + "\"sha256\": \"" + Fixtures.SHA + "\", \"inputs\": [" + inputs
                + "], \"outputs\": [" + outputs + "]}" + Fixtures.metadata().substring(at + first.length());
    }

    @Test
    public void aPictureClassifierWithTensorListsIsShown() throws Exception {
        BundleMetadata m = BundleMetadata.parse(withTensors(PICTURE_IN, SCORES_OUT));
        assertEquals(3, m.artifacts.size());
        assertEquals(10, m.labels.size());
    }

    @Test
    public void twoInputsAreRefusedNamingThem() {
        String mfcc = "{\"name\": \"mfcc\", \"shape\": [1, 13, 32], \"dtype\": \"float32\"}";
        String frames = "{\"name\": \"frames\", \"shape\": [1, 1], \"dtype\": \"float32\"}";
        assertRefused(withTensors(mfcc + ", " + frames, SCORES_OUT),
                "cannot show fashion-mnist-mobilenetv2: it takes 2 inputs (mfcc, frames); "
                        + ShownModels.WHAT_IT_SHOWS);
    }

    @Test
    public void anInputThatIsNotAPictureIsRefused() {
        String mfcc = "{\"name\": \"mfcc\", \"shape\": [1, 13, 32], \"dtype\": \"float32\"}";
        assertRefused(withTensors(mfcc, SCORES_OUT),
                "cannot show fashion-mnist-mobilenetv2: its input mfcc of shape [1, 13, 32] is not a picture");
    }

    @Test
    public void aDetectorsTwoOutputsAreRefusedNamingThem() {
        String boxes = "{\"name\": \"regressors\", \"shape\": [1, 896, 16], \"dtype\": \"float32\"}";
        String scores = "{\"name\": \"classificators\", \"shape\": [1, 896, 1], \"dtype\": \"float32\"}";
        assertRefused(withTensors(PICTURE_IN, boxes + ", " + scores),
                "cannot show fashion-mnist-mobilenetv2: it returns 2 outputs (regressors, classificators)");
    }

    @Test
    public void anOutputThatIsNotOneScorePerClassIsRefused() {
        String boxes = "{\"name\": \"regressors\", \"shape\": [1, 896, 16], \"dtype\": \"float32\"}";
        assertRefused(withTensors(PICTURE_IN, boxes),
                "cannot show fashion-mnist-mobilenetv2: its output regressors of shape [1, 896, 16] is not one "
                        + "score per class");
    }

    @Test
    public void aTaskOtherThanImageClassificationIsRefused() {
        assertRefused(Fixtures.metadata().replace("\"task\": \"image-classification\"", "\"task\": \"tensors\""),
                "cannot show fashion-mnist-mobilenetv2: its task is tensors, not image-classification");
    }

    @Test
    public void namesFromTheFileStayOneShortLine() {
        String odd = "{\"name\": \"a\\nb" + new String(new char[80]).replace('\0', 'x') + "\", \"shape\": [1, 3]}";
        assertRefused(withTensors(odd + ", " + odd, SCORES_OUT),
                "cannot show fashion-mnist-mobilenetv2: it takes 2 inputs (a?bxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx..., ");
    }

    private static void assertRefused(String json, String messageStart) {
        try {
            BundleMetadata.parse(json);
            fail("shown a bundle the app cannot show; expected: " + messageStart);
        } catch (UnsupportedModelException ex) {
            assertTrue("message was: " + ex.getMessage(), ex.getMessage().startsWith(messageStart));
            assertTrue("one line: " + ex.getMessage(), !ex.getMessage().contains("\n"));
        } catch (BundleFormatException ex) {
            fail("refused as malformed, not as a model the app cannot show: " + ex.getMessage());
        }
    }
}
