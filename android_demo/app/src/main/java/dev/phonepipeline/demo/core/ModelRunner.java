package dev.phonepipeline.demo.core;

import java.io.Closeable;

/** One loaded model of one runtime (LiteRT or ExecuTorch): a tensor in, the model's first output tensor out. */
public interface ModelRunner extends Closeable {
    /** Runs one batch-1 input; the output is float32 or int8 as the model produces it. */
    Tensor run(Tensor input) throws Exception;
}
