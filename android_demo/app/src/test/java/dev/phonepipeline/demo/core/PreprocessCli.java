package dev.phonepipeline.demo.core;

import java.awt.image.BufferedImage;
import java.awt.image.Raster;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.Charset;
import java.nio.file.Files;
import javax.imageio.ImageIO;

/**
 * Host-only (javax.imageio is not on Android): writes the tensor the app would feed an artifact, as raw
 * little-endian bytes, so a test can compare it with pipeline/artifacts/preprocess.py bit for bit.
 *
 * <p>Usage: {@code PreprocessCli metadata.json ARTIFACT_NAME image.png out.bin}
 */
public final class PreprocessCli {
    private PreprocessCli() {
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: PreprocessCli metadata.json ARTIFACT_NAME image.png out.bin");
            System.exit(2);
        }
        String json = new String(Files.readAllBytes(new File(args[0]).toPath()), Charset.forName("UTF-8"));
        BundleMetadata bundle = BundleMetadata.parse(json);
        Artifact artifact = null;
        for (Artifact a : bundle.artifacts) {
            if (a.name.equals(args[1])) {
                artifact = a;
            }
        }
        if (artifact == null) {
            System.err.println("no artifact named " + args[1]);
            System.exit(2);
        }
        Tensor tensor = Preprocessor.toTensor(readPng(new File(args[2])), bundle.input, artifact);
        OutputStream out = new FileOutputStream(args[3]);
        try {
            out.write(toBytes(tensor));
        } finally {
            out.close();
        }
    }

    /** Decodes with ImageIO, keeping the stored samples: grey stays one channel, alpha is dropped. */
    static Pixels readPng(File file) throws IOException {
        BufferedImage image = ImageIO.read(file);
        if (image == null) {
            throw new IOException(file + ": not an image ImageIO can read");
        }
        // The raster holds the stored samples; getRGB() would push grey through a colour-space conversion.
        Raster raster = image.getRaster();
        int bands = raster.getNumBands();
        if (bands == 2) {
            throw new IOException(file + ": grey+alpha images are not supported (nor by the reference)");
        }
        if (raster.getSampleModel().getSampleSize(0) != 8) {
            throw new IOException(file + ": only 8-bit images are supported");
        }
        int channels = bands == 1 ? 1 : 3;
        int w = image.getWidth();
        int h = image.getHeight();
        byte[] samples = new byte[w * h * channels];
        int[] pixel = new int[bands];
        for (int y = 0; y < h; y++) {
            for (int x = 0; x < w; x++) {
                raster.getPixel(x, y, pixel);
                for (int c = 0; c < channels; c++) {
                    samples[(y * w + x) * channels + c] = (byte) pixel[c];
                }
            }
        }
        return new Pixels(w, h, channels, samples);
    }

    static byte[] toBytes(Tensor tensor) {
        if (tensor.bytes != null) {
            return tensor.bytes.clone();
        }
        ByteBuffer buf = ByteBuffer.allocate(tensor.floats.length * 4).order(ByteOrder.LITTLE_ENDIAN);
        buf.asFloatBuffer().put(tensor.floats);
        return buf.array();
    }
}
