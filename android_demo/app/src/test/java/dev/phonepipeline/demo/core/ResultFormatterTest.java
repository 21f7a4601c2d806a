package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertEquals;

import java.util.Arrays;
import org.junit.Test;

public class ResultFormatterTest {
    @Test
    public void formatsTopClassesAndTheTrueLabel() {
        String text = ResultFormatter.topClasses(Arrays.asList(
                new Prediction(9, "Ankle boot", 5f, 0.9712), new Prediction(7, "Sneaker", 1f, 0.0201)), "Ankle boot");
        String nl = System.lineSeparator();
        assertEquals("1. Ankle boot  97.1 %" + nl + "2. Sneaker  2.0 %" + nl + "(true: Ankle boot)\n", text);
    }

    @Test
    public void formatsLatencyPerRuntimeAndArtifact() throws Exception {
        Artifact a = BundleMetadata.parse(Fixtures.metadata()).artifacts.get(1);
        LatencyStats s = new LatencyStats();
        assertEquals("TFLite tflite-int8: no runs yet", ResultFormatter.latency(a, s));
        s.add(1_234_000);
        s.add(1_500_000);
        assertEquals("TFLite tflite-int8: median 1.23 ms, p90 1.50 ms, n=2", ResultFormatter.latency(a, s));
    }

    @Test
    public void formatsAccuracy() {
        assertEquals("samples: 9 of 10 right (90.0 %)", ResultFormatter.accuracy(9, 10));
    }
}
