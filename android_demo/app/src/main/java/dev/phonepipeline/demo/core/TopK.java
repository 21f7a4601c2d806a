package dev.phonepipeline.demo.core;

import java.util.ArrayList;
import java.util.List;

/**
 * Scores -> the k most likely classes with their labels. Ties keep the lower class index first, as numpy's stable
 * argsort of the negated scores does. Example: {@code TopK.of(new float[] {0.1f, 2f, 1f}, labels, 2, true)} gives
 * classes 1 and 2.
 */
public final class TopK {
    private TopK() {
    }

    /** {@code logits}: whether scores are logits (softmax applied for the probabilities) or probabilities already. */
    public static List<Prediction> of(float[] scores, List<String> labels, int k, boolean logits) {
        if (scores.length != labels.size()) {
            throw new IllegalArgumentException("the model gave " + scores.length + " scores for " + labels.size()
                    + " labels");
        }
        double[] probs = logits ? softmax(scores) : toDouble(scores);
        int n = Math.min(k, scores.length);
        boolean[] taken = new boolean[scores.length];
        List<Prediction> out = new ArrayList<Prediction>(n);
        for (int rank = 0; rank < n; rank++) {
            int best = -1;
            for (int i = 0; i < scores.length; i++) {
                if (!taken[i] && (best < 0 || scores[i] > scores[best])) {
                    best = i;
                }
            }
            taken[best] = true;
            out.add(new Prediction(best, labels.get(best), scores[best], probs[best]));
        }
        return out;
    }

    static double[] softmax(float[] logits) {
        double max = Double.NEGATIVE_INFINITY;
        for (float v : logits) {
            max = Math.max(max, v);
        }
        double sum = 0;
        double[] out = new double[logits.length];
        for (int i = 0; i < logits.length; i++) {
            out[i] = Math.exp(logits[i] - max);
            sum += out[i];
        }
        for (int i = 0; i < out.length; i++) {
            out[i] /= sum;
        }
        return out;
    }

    private static double[] toDouble(float[] v) {
        double[] out = new double[v.length];
        for (int i = 0; i < v.length; i++) {
            out[i] = v[i];
        }
        return out;
    }
}
