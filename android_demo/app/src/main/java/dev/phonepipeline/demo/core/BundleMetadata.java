package dev.phonepipeline.demo.core;

import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * A release bundle's metadata.json (schema "phone-pipeline/bundle/1"), validated when it is read.
 *
 * <p>Example: {@code BundleMetadata.parse(text).artifacts.get(0).layout}. Malformed input throws
 * BundleFormatException with one line that names the key, e.g.
 * {@code metadata.json: input.channels: expected 1 (grey) or 3 (RGB), got 2}. A well-formed bundle of a model the
 * app cannot show (see ShownModels) throws UnsupportedModelException, whose one line says why.
 */
public final class BundleMetadata {
    public static final String SCHEMA = "phone-pipeline/bundle/1";

    public final String modelName;
    public final String modelVersion;
    public final String task;
    public final InputSpec input;
    public final List<String> labels;
    /** "logits" or "probabilities". */
    public final String outputKind;
    public final List<Artifact> artifacts;
    public final List<Sample> samples;

    private BundleMetadata(String modelName, String modelVersion, String task, InputSpec input, List<String> labels,
                           String outputKind, List<Artifact> artifacts, List<Sample> samples) {
        this.modelName = modelName;
        this.modelVersion = modelVersion;
        this.task = task;
        this.input = input;
        this.labels = Collections.unmodifiableList(labels);
        this.outputKind = outputKind;
        this.artifacts = Collections.unmodifiableList(artifacts);
        this.samples = Collections.unmodifiableList(samples);
    }

    public static BundleMetadata parse(String json) throws BundleFormatException {
        Object value;
        try {
            value = Json.parse(json);
        } catch (IllegalArgumentException ex) {
            throw new BundleFormatException("metadata.json: " + ex.getMessage());
        }
        JsonNode root = new JsonNode(value, "");
        root.asObject();
        JsonNode schema = root.field("schema");
        if (!SCHEMA.equals(schema.value)) {
            throw schema.error("expected \"" + SCHEMA + "\", got " + quoted(schema.value));
        }
        ShownModels.check(root);
        JsonNode model = root.field("model");
        String name = model.field("name").text();
        String version = model.field("version").text();
        JsonNode taskNode = model.field("task");
        String task = taskNode.oneOf("image-classification");
        InputSpec input = InputSpec.parse(root.field("input"));
        List<String> labels = new ArrayList<String>();
        for (JsonNode label : root.field("labels").items()) {
            labels.add(label.text());
        }
        JsonNode output = root.field("output");
        String kind = output.field("kind").oneOf("logits", "probabilities");
        JsonNode classesNode = output.field("classes");
        int classes = classesNode.positiveInt();
        if (classes != labels.size()) {
            throw classesNode.error(classes + " classes but " + labels.size() + " labels");
        }
        List<Artifact> artifacts = new ArrayList<Artifact>();
        Set<String> names = new HashSet<String>();
        for (JsonNode node : root.field("artifacts").items()) {
            Artifact artifact = Artifact.parse(node, input);
            if (!names.add(artifact.name)) {
                throw node.field("name").error("duplicate artifact name \"" + artifact.name + "\"");
            }
            artifacts.add(artifact);
        }
        if (artifacts.isEmpty()) {
            throw root.field("artifacts").error("a bundle needs at least one artifact");
        }
        List<Sample> samples = new ArrayList<Sample>();
        for (JsonNode node : root.field("samples").items()) {
            String file = Artifact.relativePath(node.field("file"));
            JsonNode labelNode = node.optionalField("label");
            int label = -1;
            if (!labelNode.isNull()) {
                long l = labelNode.integer();
                if (l < 0 || l >= classes) {
                    throw labelNode.error("expected a class index in [0, " + classes + "), got " + l);
                }
                label = (int) l;
            }
            samples.add(new Sample(file, label));
        }
        return new BundleMetadata(name, version, task, input, labels, kind, artifacts, samples);
    }

    /** The artifacts one runtime can run, in bundle order. */
    public List<Artifact> artifactsFor(Artifact.Format format) {
        List<Artifact> out = new ArrayList<Artifact>();
        for (Artifact a : artifacts) {
            if (a.format == format) {
                out.add(a);
            }
        }
        return out;
    }

    private static String quoted(Object value) {
        return value instanceof String ? "\"" + value + "\"" : String.valueOf(value);
    }
}
