package dev.phonepipeline.demo.core;

/** A flat tensor with its shape: float32 or int8, the two dtypes bundles use at a model's edges. */
public final class Tensor {
    public final Artifact.DType dtype;
    public final long[] shape;
    /** Set for FLOAT32, else null. */
    public final float[] floats;
    /** Set for INT8, else null. */
    public final byte[] bytes;

    private Tensor(Artifact.DType dtype, long[] shape, float[] floats, byte[] bytes) {
        long n = 1;
        for (long d : shape) {
            n *= d;
        }
        int length = floats != null ? floats.length : bytes.length;
        if (n != length) {
            throw new IllegalArgumentException("shape " + java.util.Arrays.toString(shape) + " holds " + n
                    + " values, got " + length);
        }
        this.dtype = dtype;
        this.shape = shape.clone();
        this.floats = floats;
        this.bytes = bytes;
    }

    public static Tensor ofFloat(float[] values, long[] shape) {
        return new Tensor(Artifact.DType.FLOAT32, shape, values, null);
    }

    public static Tensor ofInt8(byte[] values, long[] shape) {
        return new Tensor(Artifact.DType.INT8, shape, null, values);
    }

    public int size() {
        return floats != null ? floats.length : bytes.length;
    }

    /** The values as real numbers: int8 ones through {@code q} (the artifact's output quantization). */
    public float[] toReal(Quantization q) {
        if (floats != null) {
            return floats;
        }
        if (q == null) {
            throw new IllegalStateException("an int8 output needs the artifact's output_quantization");
        }
        float[] out = new float[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            out[i] = q.dequantize(bytes[i]);
        }
        return out;
    }
}
