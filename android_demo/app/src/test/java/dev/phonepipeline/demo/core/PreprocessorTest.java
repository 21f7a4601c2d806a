package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class PreprocessorTest {
    private static final InputSpec HALF = new InputSpec(2, 2, 1, new float[] {0.5f}, new float[] {0.5f});

    @Test
    public void matchesTheReferenceDocstringExample() {
        Pixels img = new Pixels(2, 2, 1, new byte[] {0, (byte) 255, (byte) 255, 0});
        assertArrayEquals(new float[] {-1f, 1f, 1f, -1f}, Preprocessor.preprocess(img, HALF, Artifact.Layout.NHWC), 0f);
    }

    @Test
    public void rgbToGreyIsTheFloat32WeightedSumNotTheGreyValue() {
        // 0.299*15 + 0.587*15 + 0.114*15 in float32 is 15.000001, as numpy computes it.
        Pixels img = new Pixels(1, 1, 3, new byte[] {15, 15, 15});
        float[] grey = Preprocessor.toChannels(img, 1);
        assertEquals(15.000001f, grey[0], 0f);
    }

    @Test
    public void greyToRgbRepeatsTheValue() {
        Pixels img = new Pixels(1, 1, 1, new byte[] {(byte) 200});
        assertArrayEquals(new float[] {200f, 200f, 200f}, Preprocessor.toChannels(img, 3), 0f);
    }

    @Test
    public void resizeUsesHalfPixelCentres() {
        // 2 -> 4 columns: src = (dst + 0.5) * 0.5 - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to 1).
        float[] row = {0f, 100f};
        float[] out = Preprocessor.resizeBilinear(row, 1, 2, 1, 1, 4);
        assertArrayEquals(new float[] {0f, 25f, 75f, 100f}, out, 0f);
    }

    @Test
    public void nchwPutsChannelsFirst() {
        float[] hwc = {1, 2, 3, 4, 5, 6}; // 1 x 2 pixels x 3 channels
        assertArrayEquals(new float[] {1, 4, 2, 5, 3, 6}, Preprocessor.toNchw(hwc, 1, 2, 3), 0f);
    }

    @Test
    public void quantizeRoundsHalfToEvenAndClamps() {
        Quantization q = new Quantization(1f, 0);
        byte[] out = Preprocessor.quantizeInt8(new float[] {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 300f, -300f}, q);
        assertArrayEquals(new byte[] {0, 2, 2, 0, -2, 127, -128}, out);
        Quantization shifted = new Quantization(0.5f, -5);
        assertArrayEquals(new byte[] {-3}, Preprocessor.quantizeInt8(new float[] {1f}, shifted));
    }
}
