package dev.phonepipeline.demo.core;

/** What a model expects as input, independent of an artifact's layout (pipeline/artifacts/preprocess.py's InputSpec). */
public final class InputSpec {
    public final int height;
    public final int width;
    /** 1 (grey) or 3 (RGB). */
    public final int channels;
    /** Per channel, as float32: the reference narrows the JSON doubles to float32 before it uses them. */
    public final float[] mean;
    public final float[] std;

    public InputSpec(int height, int width, int channels, float[] mean, float[] std) {
        if (height <= 0 || width <= 0) {
            throw new IllegalArgumentException("input size must be positive, got " + height + "x" + width);
        }
        if (channels != 1 && channels != 3) {
            throw new IllegalArgumentException("channels must be 1 or 3, got " + channels);
        }
        if (mean.length != channels || std.length != channels) {
            throw new IllegalArgumentException("mean and std need one value per channel");
        }
        this.height = height;
        this.width = width;
        this.channels = channels;
        this.mean = mean.clone();
        this.std = std.clone();
    }

    static InputSpec parse(JsonNode node) throws BundleFormatException {
        int height = node.field("height").positiveInt();
        int width = node.field("width").positiveInt();
        JsonNode ch = node.field("channels");
        int channels = ch.positiveInt();
        if (channels != 1 && channels != 3) {
            throw ch.error("expected 1 (grey) or 3 (RGB), got " + channels);
        }
        float[] mean = perChannel(node.field("mean"), channels, false);
        float[] std = perChannel(node.field("std"), channels, true);
        return new InputSpec(height, width, channels, mean, std);
    }

    private static float[] perChannel(JsonNode list, int channels, boolean nonZero) throws BundleFormatException {
        java.util.List<JsonNode> items = list.items();
        if (items.size() != channels) {
            throw list.error("expected " + channels + " value(s), one per channel, got " + items.size());
        }
        float[] out = new float[channels];
        for (int i = 0; i < channels; i++) {
            out[i] = (float) items.get(i).number();
            if (nonZero && out[i] == 0f) {
                throw items.get(i).error("must not be zero");
            }
        }
        return out;
    }
}
