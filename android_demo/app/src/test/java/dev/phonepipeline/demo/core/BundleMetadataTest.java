package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import org.junit.Test;

public class BundleMetadataTest {
    @Test
    public void parsesThePipelinesBundleShape() throws Exception {
        BundleMetadata m = BundleMetadata.parse(Fixtures.metadata());
        assertEquals("fashion-mnist-mobilenetv2", m.modelName);
        assertEquals(28, m.input.height);
        assertEquals(0.2860f, m.input.mean[0], 0f);
        assertEquals(10, m.labels.size());
        assertEquals("Ankle boot", m.labels.get(9));
        assertEquals(3, m.artifacts.size());
        Artifact int8 = m.artifacts.get(1);
        assertEquals(Artifact.DType.INT8, int8.inputDType);
        assertEquals(0.0123f, int8.inputQuantization.scale, 0f);
        assertEquals(-5, int8.inputQuantization.zeroPoint);
        assertEquals(3, int8.outputQuantization.zeroPoint);
        Artifact pte = m.artifacts.get(2);
        assertEquals(Artifact.Format.PTE, pte.format);
        assertEquals(Artifact.Layout.NCHW, pte.layout);
        assertArrayEquals(new long[] {1, 1, 28, 28}, pte.inputShape);
        assertNull(pte.inputQuantization);
        assertEquals(2, m.artifactsFor(Artifact.Format.TFLITE).size());
        assertEquals(9, m.samples.get(0).label);
    }

    @Test
    public void rejectsAnotherSchema() {
        assertRejected(Fixtures.metadata().replace("phone-pipeline/bundle/1", "phone-pipeline/bundle/2"),
                "metadata.json: schema: expected \"phone-pipeline/bundle/1\"");
    }

    @Test
    public void rejectsInvalidJsonWithItsPosition() {
        assertRejected("{\"schema\": ", "metadata.json: not valid JSON at character");
    }

    @Test
    public void rejectsAMissingKeyNamingIt() {
        assertRejected(Fixtures.metadata().replace("\"std\": [0.3530]", "\"sd\": [0.3530]"),
                "metadata.json: input.std: missing");
    }

    @Test
    public void rejectsAnInt8InputWithoutQuantization() {
        String text = Fixtures.metadata().replace("{\"scale\": 0.0123, \"zero_point\": -5}", "null");
        assertRejected(text, "metadata.json: artifacts[1].input_quantization: required when input_dtype is int8");
    }

    @Test
    public void rejectsAShapeThatDisagreesWithLayoutAndInput() {
        String text = Fixtures.metadata().replace("[1, 1, 28, 28]", "[1, 28, 28, 1]");
        assertRejected(text, "metadata.json: artifacts[2].input_shape: expected [1, 1, 28, 28] for layout NCHW");
    }

    @Test
    public void rejectsLabelsThatDoNotMatchTheClassCount() {
        assertRejected(Fixtures.metadata().replace("\"classes\": 10", "\"classes\": 11"),
                "metadata.json: output.classes: 11 classes but 10 labels");
    }

    @Test
    public void rejectsChannelsOtherThanGreyOrRgb() {
        assertRejected(Fixtures.metadata().replace("\"channels\": 1", "\"channels\": 2"),
                "metadata.json: input.channels: expected 1 (grey) or 3 (RGB), got 2");
    }

    @Test
    public void rejectsPathsOutsideTheBundle() {
        assertRejected(Fixtures.metadata().replace("models/model_fp32.pte", "../model_fp32.pte"),
                "metadata.json: artifacts[2].file: expected a path inside the bundle");
    }

    @Test
    public void rejectsASampleLabelOutOfRange() {
        assertRejected(Fixtures.metadata().replace("\"label\": 9", "\"label\": 10"),
                "metadata.json: samples[0].label: expected a class index in [0, 10), got 10");
    }

    @Test
    public void rejectsAHashThatIsNotSha256Hex() {
        assertRejected(Fixtures.metadata().replaceFirst(Fixtures.SHA, "..."),
                "metadata.json: artifacts[0].sha256: expected 64 lower-case hex digits");
    }

    @Test
    public void rejectsAnUnknownFormat() {
        assertRejected(Fixtures.metadata().replace("\"format\": \"pte\"", "\"format\": \"onnx\""),
                "metadata.json: artifacts[2].format: \"onnx\" is not one of tflite, pte");
    }

    private static void assertRejected(String json, String messageStart) {
        try {
            BundleMetadata.parse(json);
            fail("accepted a malformed bundle; expected: " + messageStart);
        } catch (BundleFormatException ex) {
            assertTrue("message was: " + ex.getMessage(), ex.getMessage().startsWith(messageStart));
            assertTrue("one line: " + ex.getMessage(), !ex.getMessage().contains("\n"));
        }
    }
}
