package dev.phonepipeline.demo.core;

import java.util.Arrays;

/** Inference times of one artifact: count, median, p90 (nearest rank), mean and min, in milliseconds. */
public final class LatencyStats {
    private long[] nanos = new long[16];
    private int count;

    public void add(long elapsedNanos) {
        if (elapsedNanos < 0) {
            throw new IllegalArgumentException("negative latency " + elapsedNanos);
        }
        if (count == nanos.length) {
            nanos = Arrays.copyOf(nanos, count * 2);
        }
        nanos[count++] = elapsedNanos;
    }

    public int count() {
        return count;
    }

    public double medianMs() {
        return percentileMs(50);
    }

    public double p90Ms() {
        return percentileMs(90);
    }

    /** Nearest-rank percentile: the smallest value with at least p % of the values at or below it. */
    public double percentileMs(double p) {
        requireValues();
        long[] sorted = Arrays.copyOf(nanos, count);
        Arrays.sort(sorted);
        int rank = (int) Math.ceil(p / 100.0 * count);
        return sorted[Math.max(rank, 1) - 1] / 1e6;
    }

    public double meanMs() {
        requireValues();
        double sum = 0;
        for (int i = 0; i < count; i++) {
            sum += nanos[i];
        }
        return sum / count / 1e6;
    }

    public double minMs() {
        requireValues();
        long min = Long.MAX_VALUE;
        for (int i = 0; i < count; i++) {
            min = Math.min(min, nanos[i]);
        }
        return min / 1e6;
    }

    private void requireValues() {
        if (count == 0) {
            throw new IllegalStateException("no latencies recorded");
        }
    }
}
