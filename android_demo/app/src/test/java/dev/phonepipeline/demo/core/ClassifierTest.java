package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import java.util.List;
import org.junit.Test;

public class ClassifierTest {
    @Test
    public void feedsTheArtifactsTensorAndDecodesAnInt8Output() throws Exception {
        BundleMetadata bundle = BundleMetadata.parse(Fixtures.metadata());
        final Artifact int8 = bundle.artifacts.get(1);
        final Tensor[] seen = new Tensor[1];
        ModelRunner runner = new ModelRunner() {
            @Override
            public Tensor run(Tensor input) {
                seen[0] = input;
                byte[] out = new byte[10];
                out[9] = 53; // (53 - 3) * 0.1 = 5.0: class 9 wins
                out[7] = 13; // 1.0
                return Tensor.ofInt8(out, new long[] {1, 10});
            }

            @Override
            public void close() {
            }
        };
        Classifier classifier = new Classifier(bundle, int8, runner);
        ClassificationResult result = classifier.classify(new Pixels(28, 28, 1, new byte[28 * 28]), 3);
        assertEquals(Artifact.DType.INT8, seen[0].dtype);
        assertArrayEquals(new long[] {1, 28, 28, 1}, seen[0].shape);
        // black: (0/255 - 0.286) / 0.353 / 0.0123 - 5 rounds to -71
        assertEquals(-71, seen[0].bytes[0]);
        List<Prediction> top = result.top;
        assertEquals("Ankle boot", top.get(0).label);
        assertEquals(5.0f, top.get(0).score, 1e-6f);
        assertEquals("Sneaker", top.get(1).label);
        assertEquals(1, classifier.latency.count());
    }
}
