package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;

import org.junit.Test;

public class RuntimesTest {
    @Test
    public void aBuildWithoutTheGlueSaysTheRuntimeIsMissing() {
        // The host JVM, like the hand-built APK, has no runtime glue classes on its class path.
        assertNull(Runtimes.find(Artifact.Format.TFLITE));
        assertNull(Runtimes.find(Artifact.Format.PTE));
        assertEquals("TFLite (LiteRT): runtime not in this build", Runtimes.status(Artifact.Format.TFLITE));
        assertEquals("ExecuTorch: runtime not in this build", Runtimes.status(Artifact.Format.PTE));
    }

    @Test
    public void findsAGlueClassByName() {
        RuntimeFactory f = Runtimes.load(FakeRuntime.class.getName());
        assertEquals("fake", f.describe());
    }

    /** Stands in for the glue classes only a Gradle build compiles. */
    public static final class FakeRuntime implements RuntimeFactory {
        public FakeRuntime() {
        }

        @Override
        public String describe() {
            return "fake";
        }

        @Override
        public ModelRunner open(java.io.File modelFile, Artifact artifact) {
            throw new UnsupportedOperationException();
        }
    }
}
