package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class PixelsTest {
    @Test
    public void argbWithEqualChannelsEverywhereIsGrey() {
        Pixels p = Pixels.fromArgb(new int[] {0xFF0F0F0F, 0x80C8C8C8}, 2, 1);
        assertEquals(1, p.channels);
        assertArrayEquals(new byte[] {15, (byte) 200}, p.samples);
    }

    @Test
    public void argbWithAnyColouredPixelIsRgbWithoutAlpha() {
        Pixels p = Pixels.fromArgb(new int[] {0xFF0F0F0F, 0x00102030}, 2, 1);
        assertEquals(3, p.channels);
        assertArrayEquals(new byte[] {15, 15, 15, 0x10, 0x20, 0x30}, p.samples);
    }
}
