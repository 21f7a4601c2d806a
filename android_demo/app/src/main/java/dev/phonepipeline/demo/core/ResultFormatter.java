package dev.phonepipeline.demo.core;

import java.util.List;
import java.util.Locale;

/** The text the app shows: top classes with probabilities, and latency lines per runtime and artifact. */
public final class ResultFormatter {
    private ResultFormatter() {
    }

    /** e.g. "1. Ankle boot  97.1 %" per line; a trailing "(true: Sneaker)" line when the label is known. */
    public static String topClasses(List<Prediction> top, String trueLabel) {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < top.size(); i++) {
            Prediction p = top.get(i);
            s.append(String.format(Locale.ROOT, "%d. %s  %.1f %%%n", i + 1, p.label, 100.0 * p.probability));
        }
        if (trueLabel != null) {
            s.append("(true: ").append(trueLabel).append(")\n");
        }
        return s.toString();
    }

    /** e.g. "TFLite tflite-int8: median 1.23 ms, p90 1.50 ms, n=20" or "...: no runs yet". */
    public static String latency(Artifact artifact, LatencyStats stats) {
        String head = artifact.runtimeName() + " " + artifact.name + ": ";
        if (stats.count() == 0) {
            return head + "no runs yet";
        }
        return head + String.format(Locale.ROOT, "median %.2f ms, p90 %.2f ms, n=%d", stats.medianMs(),
                stats.p90Ms(), stats.count());
    }

    /** e.g. "samples: 9 of 10 right (90.0 %)". */
    public static String accuracy(int right, int total) {
        if (total == 0) {
            return "samples: none with a known label";
        }
        return String.format(Locale.ROOT, "samples: %d of %d right (%.1f %%)", right, total, 100.0 * right / total);
    }
}
