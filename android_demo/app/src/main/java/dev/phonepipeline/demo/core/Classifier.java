package dev.phonepipeline.demo.core;

import java.io.Closeable;
import java.io.IOException;
import java.util.List;

/** One artifact ready to classify pictures: reference preprocessing, the runtime, output decoding and top-k. */
public final class Classifier implements Closeable {
    public final BundleMetadata bundle;
    public final Artifact artifact;
    public final LatencyStats latency = new LatencyStats();
    private final ModelRunner runner;

    public Classifier(BundleMetadata bundle, Artifact artifact, ModelRunner runner) {
        this.bundle = bundle;
        this.artifact = artifact;
        this.runner = runner;
    }

    public ClassificationResult classify(Pixels image, int k) throws Exception {
        long t0 = System.nanoTime();
        Tensor input = Preprocessor.toTensor(image, bundle.input, artifact);
        long t1 = System.nanoTime();
        Tensor output = runner.run(input);
        long t2 = System.nanoTime();
        latency.add(t2 - t1);
        float[] scores = output.toReal(artifact.outputQuantization);
        List<Prediction> top = TopK.of(scores, bundle.labels, k, "logits".equals(bundle.outputKind));
        return new ClassificationResult(top, t2 - t1, t1 - t0);
    }

    @Override
    public void close() throws IOException {
        runner.close();
    }
}
