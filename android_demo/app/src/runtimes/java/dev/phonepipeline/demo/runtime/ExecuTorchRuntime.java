package dev.phonepipeline.demo.runtime;

import dev.phonepipeline.demo.core.Artifact;
import dev.phonepipeline.demo.core.ModelRunner;
import dev.phonepipeline.demo.core.RuntimeFactory;
import dev.phonepipeline.demo.core.Tensor;
import java.io.File;
import org.pytorch.executorch.DType;
import org.pytorch.executorch.EValue;
import org.pytorch.executorch.Module;

/**
 * ExecuTorch glue (org.pytorch:executorch-android, Module API). Only a Gradle build with that library compiles
 * this file; the app finds it by name through core.Runtimes.
 */
public final class ExecuTorchRuntime implements RuntimeFactory {
    public ExecuTorchRuntime() {
    }

    @Override
    public String describe() {
        return "ExecuTorch (executorch-android)";
    }

    @Override
    public ModelRunner open(File modelFile, Artifact artifact) {
        return new Runner(Module.load(modelFile.getAbsolutePath()));
    }

    private static final class Runner implements ModelRunner {
        private final Module module;

        Runner(Module module) {
            this.module = module;
        }

        @Override
        public Tensor run(Tensor input) {
            org.pytorch.executorch.Tensor in = input.floats != null
                    ? org.pytorch.executorch.Tensor.fromBlob(input.floats, input.shape)
                    : org.pytorch.executorch.Tensor.fromBlob(input.bytes, input.shape); // int8
            EValue[] outputs = module.forward(EValue.from(in));
            org.pytorch.executorch.Tensor out = outputs[0].toTensor();
            if (out.dtype() == DType.FLOAT) {
                return Tensor.ofFloat(out.getDataAsFloatArray(), out.shape());
            }
            if (out.dtype() == DType.INT8) {
                return Tensor.ofInt8(out.getDataAsByteArray(), out.shape());
            }
            throw new IllegalStateException("output dtype " + out.dtype() + " is not float32 or int8");
        }

        @Override
        public void close() {
            module.destroy();
        }
    }
}
