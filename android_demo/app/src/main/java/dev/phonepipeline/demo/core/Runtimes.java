package dev.phonepipeline.demo.core;

/**
 * Finds the runtime glue by class name, so that a build without the LiteRT/ExecuTorch libraries (the hand-built
 * APK) still starts and says which runtime it lacks instead of failing to load classes.
 */
public final class Runtimes {
    public static final String NOT_IN_BUILD = "runtime not in this build";
    static final String LITERT_CLASS = "dev.phonepipeline.demo.runtime.LiteRtRuntime";
    static final String EXECUTORCH_CLASS = "dev.phonepipeline.demo.runtime.ExecuTorchRuntime";

    private Runtimes() {
    }

    /** The factory for a format, or null when its glue class (or the library under it) is missing. */
    public static RuntimeFactory find(Artifact.Format format) {
        return load(format == Artifact.Format.TFLITE ? LITERT_CLASS : EXECUTORCH_CLASS);
    }

    static RuntimeFactory load(String className) {
        try {
            Class<?> cls = Class.forName(className);
            return (RuntimeFactory) cls.getDeclaredConstructor().newInstance();
        } catch (ClassNotFoundException | LinkageError ex) {
            return null;
        } catch (ReflectiveOperationException ex) {
            return null;
        }
    }

    /** One line for the UI: the runtime's description or why it is unavailable. */
    public static String status(Artifact.Format format) {
        RuntimeFactory factory = find(format);
        String name = format == Artifact.Format.TFLITE ? "TFLite (LiteRT)" : "ExecuTorch";
        return name + ": " + (factory == null ? NOT_IN_BUILD : factory.describe());
    }
}
