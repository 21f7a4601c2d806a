package dev.phonepipeline.demo.core;

import java.util.List;
import java.util.Locale;

/** One model file of a bundle and everything needed to feed it: read from metadata, never guessed from names. */
public final class Artifact {
    public enum Format { TFLITE, PTE }

    public enum Layout { NCHW, NHWC }

    public enum DType { FLOAT32, INT8 }

    public final String name;
    /** Relative to the bundle root, e.g. "models/model_int8.tflite". */
    public final String file;
    public final Format format;
    public final String precision;
    public final Layout layout;
    public final long[] inputShape;
    public final DType inputDType;
    /** null unless the input is int8. */
    public final Quantization inputQuantization;
    /** null when the output is float32. */
    public final Quantization outputQuantization;
    /** Lower-case hex SHA-256 of the file. */
    public final String sha256;

    Artifact(String name, String file, Format format, String precision, Layout layout, long[] inputShape,
             DType inputDType, Quantization inputQuantization, Quantization outputQuantization, String sha256) {
        this.name = name;
        this.file = file;
        this.format = format;
        this.precision = precision;
        this.layout = layout;
        this.inputShape = inputShape;
        this.inputDType = inputDType;
        this.inputQuantization = inputQuantization;
        this.outputQuantization = outputQuantization;
        this.sha256 = sha256;
    }

    /** "TFLite" or "ExecuTorch": what the app's runtime switch shows. */
    public String runtimeName() {
        return format == Format.TFLITE ? "TFLite" : "ExecuTorch";
    }

    static Artifact parse(JsonNode node, InputSpec input) throws BundleFormatException {
        String name = node.field("name").text();
        String file = relativePath(node.field("file"));
        Format format = Format.valueOf(node.field("format").oneOf("tflite", "pte").toUpperCase(Locale.ROOT));
        String precision = node.field("precision").text();
        Layout layout = Layout.valueOf(node.field("layout").oneOf("NCHW", "NHWC"));
        long[] shape = inputShape(node.field("input_shape"), layout, input);
        DType dtype = DType.valueOf(node.field("input_dtype").oneOf("float32", "int8").toUpperCase(Locale.ROOT));
        JsonNode inQNode = node.field("input_quantization");
        Quantization inQ = Quantization.parseOptional(inQNode);
        if (dtype == DType.INT8 && inQ == null) {
            throw inQNode.error("required when input_dtype is int8");
        }
        if (dtype == DType.FLOAT32 && inQ != null) {
            throw inQNode.error("must be null when input_dtype is float32");
        }
        Quantization outQ = Quantization.parseOptional(node.field("output_quantization"));
        JsonNode shaNode = node.field("sha256");
        String sha = shaNode.text();
        if (!sha.matches("[0-9a-f]{64}")) {
            throw shaNode.error("expected 64 lower-case hex digits");
        }
        return new Artifact(name, file, format, precision, layout, shape, dtype, inQ, outQ, sha);
    }

    static String relativePath(JsonNode node) throws BundleFormatException {
        String path = node.text();
        if (path.startsWith("/") || path.contains("\\") || path.equals("..") || path.startsWith("../")
                || path.contains("/../") || path.endsWith("/..")) {
            throw node.error("expected a path inside the bundle, got \"" + path + "\"");
        }
        return path;
    }

    private static long[] inputShape(JsonNode node, Layout layout, InputSpec input) throws BundleFormatException {
        List<JsonNode> items = node.items();
        if (items.size() != 4) {
            throw node.error("expected 4 dimensions, got " + items.size());
        }
        long[] shape = new long[4];
        for (int i = 0; i < 4; i++) {
            shape[i] = items.get(i).positiveInt();
        }
        long[] want = layout == Layout.NCHW
                ? new long[] {1, input.channels, input.height, input.width}
                : new long[] {1, input.height, input.width, input.channels};
        if (!java.util.Arrays.equals(shape, want)) {
            throw node.error("expected " + java.util.Arrays.toString(want) + " for layout " + layout
                    + " and the bundle's input, got " + java.util.Arrays.toString(shape));
        }
        return shape;
    }
}
