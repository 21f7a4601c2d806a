package dev.phonepipeline.demo.core;

/**
 * A decoded 8-bit image: height x width x channels samples (channels 1 = grey, 3 = RGB), row-major, interleaved.
 *
 * <p>Grey and RGB are kept apart because the reference treats them differently: a grey image is used as it is,
 * an RGB one is mixed with {@code 0.299 R + 0.587 G + 0.114 B}, which in float32 is not exactly v for 35 of the
 * 256 grey values.
 */
public final class Pixels {
    public final int width;
    public final int height;
    public final int channels;
    /** Unsigned samples stored in bytes; read them with {@code & 0xFF}. */
    public final byte[] samples;

    public Pixels(int width, int height, int channels, byte[] samples) {
        if (width <= 0 || height <= 0) {
            throw new IllegalArgumentException("image size must be positive, got " + width + "x" + height);
        }
        if (channels != 1 && channels != 3) {
            throw new IllegalArgumentException("images are grey (1 channel) or RGB (3), got " + channels);
        }
        if (samples.length != width * height * channels) {
            throw new IllegalArgumentException("expected " + width * height * channels + " samples, got "
                    + samples.length);
        }
        this.width = width;
        this.height = height;
        this.channels = channels;
        this.samples = samples;
    }

    /**
     * From packed ARGB ints (Android's Bitmap.getPixels, Java's BufferedImage.getRGB); alpha is dropped as the
     * reference drops it. A picture whose every pixel has R == G == B is taken as grey: a decoded Bitmap no longer
     * says whether its PNG was stored grey, and the bundle's grey samples must come out as the reference's.
     */
    public static Pixels fromArgb(int[] argb, int width, int height) {
        if (argb.length != width * height) {
            throw new IllegalArgumentException("expected " + width * height + " pixels, got " + argb.length);
        }
        boolean grey = true;
        for (int p : argb) {
            int r = (p >> 16) & 0xFF;
            if (r != ((p >> 8) & 0xFF) || r != (p & 0xFF)) {
                grey = false;
                break;
            }
        }
        byte[] out = new byte[argb.length * (grey ? 1 : 3)];
        for (int i = 0; i < argb.length; i++) {
            int p = argb[i];
            if (grey) {
                out[i] = (byte) (p & 0xFF);
            } else {
                out[3 * i] = (byte) (p >> 16);
                out[3 * i + 1] = (byte) (p >> 8);
                out[3 * i + 2] = (byte) p;
            }
        }
        return new Pixels(width, height, grey ? 1 : 3, out);
    }

    int sample(int y, int x, int c) {
        return samples[(y * width + x) * channels + c] & 0xFF;
    }
}
