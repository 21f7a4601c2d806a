package dev.phonepipeline.demo.core;

import java.util.List;

/**
 * Which bundles this app can show: picture classifiers, one picture in and one list of class scores out. A bundle
 * of any other model (several inputs, an input that is not a picture, several outputs or an output that is not one
 * score per class) is refused before the rest of its metadata is read, with one line naming why, e.g.
 * {@code cannot show kws-fsdd-python: it takes 2 inputs (mfcc, frames); this app shows picture classifiers ...}.
 *
 * <p>It reads each artifact's {@code inputs} and {@code outputs} lists when the bundle has them (bundles made before
 * them are one-input, one-output classifiers) and then the model's {@code task}.
 */
final class ShownModels {
    static final String WHAT_IT_SHOWS = "this app shows picture classifiers (one picture in, one list of class "
            + "scores out)";
    private static final int MAX_NAME = 40;

    private ShownModels() {
    }

    /** Throws UnsupportedModelException when the bundle's model is not one the app can show. */
    static void check(JsonNode root) throws BundleFormatException {
        JsonNode model = root.field("model");
        String name = shown(model.optionalField("name").value);
        for (JsonNode artifact : root.field("artifacts").items()) {
            String why = whyNot(artifact);
            if (why != null) {
                throw refuse(name, why);
            }
        }
        Object task = model.optionalField("task").value;
        if (!"image-classification".equals(task)) {
            throw refuse(name, "its task is " + shown(task) + ", not image-classification");
        }
        if (root.optionalField("input").isNull()) {
            throw refuse(name, "the bundle has no picture input");
        }
    }

    private static String whyNot(JsonNode artifact) throws BundleFormatException {
        JsonNode inputs = artifact.optionalField("inputs");
        if (!inputs.isNull()) {
            List<JsonNode> ins = inputs.items();
            if (ins.size() != 1) {
                return "it takes " + ins.size() + " inputs (" + names(ins) + ")";
            }
            JsonNode shape = ins.get(0).field("shape");
            if (shape.items().size() != 4) {
                return "its input " + shown(ins.get(0).optionalField("name").value) + " of shape "
                        + shape.value + " is not a picture";
            }
        }
        JsonNode outputs = artifact.optionalField("outputs");
        if (!outputs.isNull()) {
            List<JsonNode> outs = outputs.items();
            if (outs.size() != 1) {
                return "it returns " + outs.size() + " outputs (" + names(outs) + ")";
            }
            JsonNode shape = outs.get(0).field("shape");
            if (shape.items().size() != 2) {
                return "its output " + shown(outs.get(0).optionalField("name").value) + " of shape "
                        + shape.value + " is not one score per class";
            }
        }
        return null;
    }

    private static UnsupportedModelException refuse(String model, String why) {
        return new UnsupportedModelException("cannot show " + model + ": " + why + "; " + WHAT_IT_SHOWS);
    }

    private static String names(List<JsonNode> tensors) throws BundleFormatException {
        StringBuilder s = new StringBuilder();
        for (int i = 0; i < tensors.size() && i < 4; i++) {
            s.append(i == 0 ? "" : ", ").append(shown(tensors.get(i).optionalField("name").value));
        }
        return tensors.size() > 4 ? s + ", ..." : s.toString();
    }

    /** A name from the file as one short printable line: it goes on screen. */
    static String shown(Object value) {
        String s = String.valueOf(value);
        StringBuilder out = new StringBuilder();
        for (int i = 0; i < s.length() && out.length() < MAX_NAME; i++) {
            char c = s.charAt(i);
            out.append(c >= 0x20 && c < 0x7f ? c : '?');
        }
        return out.length() < s.length() ? out + "..." : out.toString();
    }
}
