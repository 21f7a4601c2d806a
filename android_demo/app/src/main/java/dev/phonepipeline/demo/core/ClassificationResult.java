package dev.phonepipeline.demo.core;

import java.util.List;

/** The top classes for one picture and how long the runtime took (inference only, preprocessing apart). */
public final class ClassificationResult {
    public final List<Prediction> top;
    public final long inferenceNanos;
    public final long preprocessNanos;

    public ClassificationResult(List<Prediction> top, long inferenceNanos, long preprocessNanos) {
        this.top = top;
        this.inferenceNanos = inferenceNanos;
        this.preprocessNanos = preprocessNanos;
    }
}
