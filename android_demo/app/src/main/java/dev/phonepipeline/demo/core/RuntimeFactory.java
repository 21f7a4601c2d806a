package dev.phonepipeline.demo.core;

import java.io.File;

/**
 * Loads artifacts of one format. Implementations are the thin runtime glue classes that only a Gradle build with
 * the LiteRT or ExecuTorch library compiles; the app finds them by name through {@link Runtimes}.
 */
public interface RuntimeFactory {
    /** e.g. "LiteRT 2.1.0"; shown next to the latency. */
    String describe();

    ModelRunner open(File modelFile, Artifact artifact) throws Exception;
}
