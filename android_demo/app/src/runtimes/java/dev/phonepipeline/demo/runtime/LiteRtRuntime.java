package dev.phonepipeline.demo.runtime;

import dev.phonepipeline.demo.core.Artifact;
import dev.phonepipeline.demo.core.ModelRunner;
import dev.phonepipeline.demo.core.RuntimeFactory;
import dev.phonepipeline.demo.core.Tensor;
import java.io.File;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.tensorflow.lite.DataType;
import org.tensorflow.lite.Interpreter;
import org.tensorflow.lite.TensorFlowLite;

/**
 * LiteRT glue (com.google.ai.edge.litert:litert, Interpreter API). Only a Gradle build with that library compiles
 * this file; the app finds it by name through core.Runtimes.
 */
public final class LiteRtRuntime implements RuntimeFactory {
    public LiteRtRuntime() {
    }

    @Override
    public String describe() {
        return "LiteRT " + TensorFlowLite.runtimeVersion();
    }

    @Override
    public ModelRunner open(File modelFile, Artifact artifact) {
        Interpreter.Options options = new Interpreter.Options().setNumThreads(4);
        return new Runner(new Interpreter(modelFile, options));
    }

    private static final class Runner implements ModelRunner {
        private final Interpreter interpreter;

        Runner(Interpreter interpreter) {
            this.interpreter = interpreter;
        }

        @Override
        public Tensor run(Tensor input) {
            ByteBuffer in;
            if (input.floats != null) {
                in = ByteBuffer.allocateDirect(input.size() * 4).order(ByteOrder.nativeOrder());
                in.asFloatBuffer().put(input.floats);
            } else {
                in = ByteBuffer.allocateDirect(input.size()).order(ByteOrder.nativeOrder());
                in.put(input.bytes);
            }
            in.rewind();
            org.tensorflow.lite.Tensor outInfo = interpreter.getOutputTensor(0);
            ByteBuffer out = ByteBuffer.allocateDirect(outInfo.numBytes()).order(ByteOrder.nativeOrder());
            interpreter.run(in, out);
            out.rewind();
            long[] shape = toLong(outInfo.shape());
            if (outInfo.dataType() == DataType.FLOAT32) {
                float[] values = new float[outInfo.numElements()];
                out.asFloatBuffer().get(values);
                return Tensor.ofFloat(values, shape);
            }
            if (outInfo.dataType() == DataType.INT8) {
                byte[] values = new byte[outInfo.numElements()];
                out.get(values);
                return Tensor.ofInt8(values, shape);
            }
            throw new IllegalStateException("output dtype " + outInfo.dataType() + " is not float32 or int8");
        }

        @Override
        public void close() {
            interpreter.close();
        }
    }

    private static long[] toLong(int[] shape) {
        long[] out = new long[shape.length];
        for (int i = 0; i < shape.length; i++) {
            out[i] = shape[i];
        }
        return out;
    }
}
