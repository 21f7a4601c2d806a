package dev.phonepipeline.demo.core;

/** A picture shipped in the bundle, with its true class when known. */
public final class Sample {
    /** Relative to the bundle root, e.g. "samples/0000.png". */
    public final String file;
    /** Index into the labels, or -1 when the bundle does not say. */
    public final int label;

    public Sample(String file, int label) {
        this.file = file;
        this.label = label;
    }
}
