package dev.phonepipeline.demo.core;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A parsed JSON value together with its key path, so that every validation error can say where it is
 * ("metadata.json: artifacts[1].input_shape: expected 4 integers").
 */
final class JsonNode {
    final Object value;
    final String path;

    JsonNode(Object value, String path) {
        this.value = value;
        this.path = path;
    }

    BundleFormatException error(String problem) {
        return new BundleFormatException("metadata.json: " + (path.isEmpty() ? "" : path + ": ") + problem);
    }

    boolean isNull() {
        return value == null;
    }

    JsonNode field(String key) throws BundleFormatException {
        Map<?, ?> map = asObject();
        String child = path.isEmpty() ? key : path + "." + key;
        if (!map.containsKey(key)) {
            throw new BundleFormatException("metadata.json: " + child + ": missing");
        }
        return new JsonNode(map.get(key), child);
    }

    JsonNode optionalField(String key) throws BundleFormatException {
        Map<?, ?> map = asObject();
        return new JsonNode(map.get(key), path.isEmpty() ? key : path + "." + key);
    }

    Map<?, ?> asObject() throws BundleFormatException {
        if (!(value instanceof Map)) {
            throw error("expected an object");
        }
        return (Map<?, ?>) value;
    }

    List<JsonNode> items() throws BundleFormatException {
        if (!(value instanceof List)) {
            throw error("expected a list");
        }
        List<?> list = (List<?>) value;
        List<JsonNode> out = new ArrayList<JsonNode>(list.size());
        for (int i = 0; i < list.size(); i++) {
            out.add(new JsonNode(list.get(i), path + "[" + i + "]"));
        }
        return out;
    }

    String text() throws BundleFormatException {
        if (!(value instanceof String) || ((String) value).isEmpty()) {
            throw error("expected a non-empty string");
        }
        return (String) value;
    }

    long integer() throws BundleFormatException {
        if (!(value instanceof Long)) {
            throw error("expected an integer");
        }
        return (Long) value;
    }

    int positiveInt() throws BundleFormatException {
        long v = integer();
        if (v <= 0 || v > Integer.MAX_VALUE) {
            throw error("expected a positive integer, got " + v);
        }
        return (int) v;
    }

    double number() throws BundleFormatException {
        if (!(value instanceof Long) && !(value instanceof Double)) {
            throw error("expected a number");
        }
        double d = ((Number) value).doubleValue();
        if (Double.isNaN(d) || Double.isInfinite(d)) {
            throw error("expected a finite number");
        }
        return d;
    }

    String oneOf(String... allowed) throws BundleFormatException {
        String s = text();
        for (String a : allowed) {
            if (a.equals(s)) {
                return s;
            }
        }
        StringBuilder list = new StringBuilder();
        for (String a : allowed) {
            list.append(list.length() == 0 ? "" : ", ").append(a);
        }
        throw error("\"" + s + "\" is not one of " + list);
    }
}
