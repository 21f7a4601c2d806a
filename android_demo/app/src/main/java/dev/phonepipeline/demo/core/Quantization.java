package dev.phonepipeline.demo.core;

/** The affine int8 mapping of a tensor: {@code real = (q - zeroPoint) * scale}. */
public final class Quantization {
    /** float32, as the reference uses it. */
    public final float scale;
    public final int zeroPoint;

    public Quantization(float scale, int zeroPoint) {
        if (!(scale > 0f) || Float.isInfinite(scale)) {
            throw new IllegalArgumentException("quantization scale must be a positive finite number, got " + scale);
        }
        if (zeroPoint < -128 || zeroPoint > 127) {
            throw new IllegalArgumentException("int8 zero point must be in [-128, 127], got " + zeroPoint);
        }
        this.scale = scale;
        this.zeroPoint = zeroPoint;
    }

    /** null when the JSON value is null. */
    static Quantization parseOptional(JsonNode node) throws BundleFormatException {
        if (node.isNull()) {
            return null;
        }
        JsonNode scaleNode = node.field("scale");
        double scale = scaleNode.number();
        if (!(scale > 0) || Float.isInfinite((float) scale) || (float) scale == 0f) {
            throw scaleNode.error("expected a positive number that fits float32, got " + scale);
        }
        JsonNode zpNode = node.field("zero_point");
        long zp = zpNode.integer();
        if (zp < -128 || zp > 127) {
            throw zpNode.error("expected an int8 zero point in [-128, 127], got " + zp);
        }
        return new Quantization((float) scale, (int) zp);
    }

    public float dequantize(byte q) {
        return (q - zeroPoint) * scale;
    }
}
