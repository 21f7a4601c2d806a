package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertEquals;

import java.util.Arrays;
import java.util.List;
import org.junit.Test;

public class TopKTest {
    private static final List<String> LABELS = Arrays.asList("a", "b", "c", "d");

    @Test
    public void ordersByScoreWithSoftmaxProbabilities() {
        List<Prediction> top = TopK.of(new float[] {0f, 2f, 1f, 0f}, LABELS, 2, true);
        assertEquals(1, top.get(0).index);
        assertEquals("c", top.get(1).label);
        double e = Math.E;
        assertEquals(e * e / (2 + e + e * e), top.get(0).probability, 1e-12);
    }

    @Test
    public void tiesKeepTheLowerIndexFirst() {
        List<Prediction> top = TopK.of(new float[] {0.25f, 0.25f, 0.5f, 0f}, LABELS, 3, false);
        assertEquals(2, top.get(0).index);
        assertEquals(0, top.get(1).index);
        assertEquals(1, top.get(2).index);
        assertEquals(0.25, top.get(1).probability, 0);
    }

    @Test(expected = IllegalArgumentException.class)
    public void refusesScoresThatDoNotMatchTheLabels() {
        TopK.of(new float[] {1f, 2f}, LABELS, 1, true);
    }
}
