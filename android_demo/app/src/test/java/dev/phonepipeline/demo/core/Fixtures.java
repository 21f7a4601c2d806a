package dev.phonepipeline.demo.core;

/** The bundle metadata of the pipeline's contract (fashion-mnist, three artifacts) as text tests can edit. */
final class Fixtures {
    static final String SHA = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    private Fixtures() {
    }

    static String metadata() {
        return "{\n"
                + "  \"schema\": \"phone-pipeline/bundle/1\",\n"
                + "  \"model\": {\"name\": \"fashion-mnist-mobilenetv2\", \"version\": \"0.1.0\","
                + " \"task\": \"image-classification\"},\n"
                + "  \"input\": {\"height\": 28, \"width\": 28, \"channels\": 1, \"mean\": [0.2860], \"std\": [0.3530]},\n"
                + "  \"labels\": [\"T-shirt/top\", \"Trouser\", \"Pullover\", \"Dress\", \"Coat\", \"Sandal\", \"Shirt\","
                + " \"Sneaker\", \"Bag\", \"Ankle boot\"],\n"
                + "  \"output\": {\"kind\": \"logits\", \"classes\": 10},\n"
                + "  \"artifacts\": [\n"
                + "    {\"name\": \"tflite-fp32\", \"file\": \"models/model_fp32.tflite\", \"format\": \"tflite\","
                + " \"precision\": \"fp32\", \"layout\": \"NHWC\", \"input_shape\": [1, 28, 28, 1],"
                + " \"input_dtype\": \"float32\", \"input_quantization\": null, \"output_quantization\": null,"
                + " \"sha256\": \"" + SHA + "\"},\n"
                + "    {\"name\": \"tflite-int8\", \"file\": \"models/model_int8.tflite\", \"format\": \"tflite\","
                + " \"precision\": \"int8\", \"layout\": \"NHWC\", \"input_shape\": [1, 28, 28, 1],"
                + " \"input_dtype\": \"int8\", \"input_quantization\": {\"scale\": 0.0123, \"zero_point\": -5},"
                + " \"output_quantization\": {\"scale\": 0.1, \"zero_point\": 3}, \"sha256\": \"" + SHA + "\"},\n"
                + "    {\"name\": \"pte-fp32\", \"file\": \"models/model_fp32.pte\", \"format\": \"pte\","
                + " \"precision\": \"fp32\", \"layout\": \"NCHW\", \"input_shape\": [1, 1, 28, 28],"
                + " \"input_dtype\": \"float32\", \"input_quantization\": null, \"output_quantization\": null,"
                + " \"sha256\": \"" + SHA + "\"}\n"
                + "  ],\n"
                + "  \"samples\": [{\"file\": \"samples/0000.png\", \"label\": 9}]\n"
                + "}\n";
    }
}
