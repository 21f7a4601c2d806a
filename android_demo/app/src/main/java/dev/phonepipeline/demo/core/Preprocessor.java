package dev.phonepipeline.demo.core;

/**
 * The Java port of pipeline/artifacts/preprocess.py, bit for bit: every step is float32 arithmetic in the reference's order.
 *
 * <ol>
 *   <li>colour: RGB to grey is {@code 0.299 R + 0.587 G + 0.114 B} (the first two summed, then the third);
 *       grey to RGB repeats the value;</li>
 *   <li>resize, only when the size differs: bilinear with half-pixel centres,
 *       {@code src = (dst + 0.5) * (in / out) - 0.5} clamped to {@code [0, in - 1]};</li>
 *   <li>{@code (v / 255 - mean[c]) / std[c]};</li>
 *   <li>layout NCHW or NHWC (batch 1);</li>
 *   <li>int8 inputs: {@code clamp(rint(x / scale) + zero_point, -128, 127)}, rint rounding half to even.</li>
 * </ol>
 * Java's float arithmetic is IEEE single precision without fused multiply-adds, as numpy's is, so the same
 * operations in the same order give the same bits. Example:
 * {@code Preprocessor.toTensor(pixels, metadata.input, artifact)} gives what {@code artifact} takes.
 */
public final class Preprocessor {
    private Preprocessor() {
    }

    /** The input tensor for one artifact: float32 or int8 as the artifact's metadata says. */
    public static Tensor toTensor(Pixels image, InputSpec spec, Artifact artifact) {
        float[] x = preprocess(image, spec, artifact.layout);
        if (artifact.inputDType == Artifact.DType.INT8) {
            return Tensor.ofInt8(quantizeInt8(x, artifact.inputQuantization), artifact.inputShape);
        }
        return Tensor.ofFloat(x, artifact.inputShape);
    }

    /** image -> float32 tensor of shape [1, C, H, W] (NCHW) or [1, H, W, C] (NHWC), flattened. */
    public static float[] preprocess(Pixels image, InputSpec spec, Artifact.Layout layout) {
        float[] hwc = toChannels(image, spec.channels);
        hwc = resizeBilinear(hwc, image.height, image.width, spec.channels, spec.height, spec.width);
        normalise(hwc, spec);
        return layout == Artifact.Layout.NHWC ? hwc : toNchw(hwc, spec.height, spec.width, spec.channels);
    }

    /** uint8 samples -> float32 H x W x channels, values still 0..255. */
    static float[] toChannels(Pixels image, int channels) {
        int n = image.width * image.height;
        float[] out = new float[n * channels];
        if (image.channels == channels) {
            for (int i = 0; i < out.length; i++) {
                out[i] = image.samples[i] & 0xFF;
            }
        } else if (channels == 1) {
            for (int i = 0; i < n; i++) {
                float r = image.samples[3 * i] & 0xFF;
                float g = image.samples[3 * i + 1] & 0xFF;
                float b = image.samples[3 * i + 2] & 0xFF;
                float grey = r * 0.299f + g * 0.587f;
                out[i] = grey + b * 0.114f;
            }
        } else {
            for (int i = 0; i < n; i++) {
                float v = image.samples[i] & 0xFF;
                out[3 * i] = v;
                out[3 * i + 1] = v;
                out[3 * i + 2] = v;
            }
        }
        return out;
    }

    /** float32 H x W x C -> outH x outW x C, half-pixel bilinear; returns the input when the size is equal. */
    static float[] resizeBilinear(float[] img, int inH, int inW, int c, int outH, int outW) {
        if (inH == outH && inW == outW) {
            return img;
        }
        AxisWeights ys = new AxisWeights(inH, outH);
        AxisWeights xs = new AxisWeights(inW, outW);
        float[] out = new float[outH * outW * c];
        for (int oy = 0; oy < outH; oy++) {
            int row0 = ys.lo[oy] * inW;
            int row1 = ys.hi[oy] * inW;
            float fy = ys.frac[oy];
            float oneMinusFy = 1f - fy;
            for (int ox = 0; ox < outW; ox++) {
                int x0 = xs.lo[ox];
                int x1 = xs.hi[ox];
                float fx = xs.frac[ox];
                float oneMinusFx = 1f - fx;
                for (int ch = 0; ch < c; ch++) {
                    float top = img[(row0 + x0) * c + ch] * oneMinusFx + img[(row0 + x1) * c + ch] * fx;
                    float bottom = img[(row1 + x0) * c + ch] * oneMinusFx + img[(row1 + x1) * c + ch] * fx;
                    out[(oy * outW + ox) * c + ch] = top * oneMinusFy + bottom * fy;
                }
            }
        }
        return out;
    }

    /** In place: {@code (v / 255 - mean[c]) / std[c]} on H x W x C. */
    static void normalise(float[] hwc, InputSpec spec) {
        int c = spec.channels;
        for (int i = 0; i < hwc.length; i++) {
            int ch = i % c;
            hwc[i] = (hwc[i] / 255f - spec.mean[ch]) / spec.std[ch];
        }
    }

    static float[] toNchw(float[] hwc, int h, int w, int c) {
        float[] out = new float[hwc.length];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                for (int ch = 0; ch < c; ch++) {
                    out[(ch * h + y) * w + x] = hwc[(y * w + x) * c + ch];
                }
            }
        }
        return out;
    }

    /** float32 -> int8 with the TFLite/ExecuTorch affine rule, rounding half to even (pipeline's quantize_int8). */
    public static byte[] quantizeInt8(float[] x, Quantization q) {
        byte[] out = new byte[x.length];
        for (int i = 0; i < x.length; i++) {
            float scaled = x[i] / q.scale;
            float v = (float) Math.rint(scaled) + q.zeroPoint;
            if (v < -128f) {
                v = -128f;
            } else if (v > 127f) {
                v = 127f;
            }
            out[i] = (byte) (int) v;
        }
        return out;
    }

    /** Source rows or columns and weights for one axis, as the reference's _axis_weights computes them. */
    private static final class AxisWeights {
        final int[] lo;
        final int[] hi;
        final float[] frac;

        AxisWeights(int nIn, int nOut) {
            lo = new int[nOut];
            hi = new int[nOut];
            frac = new float[nOut];
            float ratio = (float) nIn / (float) nOut;
            float max = nIn - 1;
            for (int i = 0; i < nOut; i++) {
                float src = ((float) i + 0.5f) * ratio - 0.5f;
                src = Math.min(Math.max(src, 0f), max);
                int l = (int) Math.floor(src);
                lo[i] = l;
                hi[i] = Math.min(l + 1, nIn - 1);
                frac[i] = src - (float) l;
            }
        }
    }
}
