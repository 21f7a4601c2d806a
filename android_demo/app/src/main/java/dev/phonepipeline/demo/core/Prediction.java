package dev.phonepipeline.demo.core;

/** One class of a result: its index, label, raw score (logit or probability) and softmax probability. */
public final class Prediction {
    public final int index;
    public final String label;
    public final float score;
    public final double probability;

    public Prediction(int index, String label, float score, double probability) {
        this.index = index;
        this.label = label;
        this.score = score;
        this.probability = probability;
    }
}
