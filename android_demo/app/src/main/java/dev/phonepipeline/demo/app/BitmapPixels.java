package dev.phonepipeline.demo.app;

import android.graphics.Bitmap;
import dev.phonepipeline.demo.core.Pixels;

/** The one Android-specific step of preprocessing: a Bitmap's ARGB ints, handed to the plain-Java core. */
final class BitmapPixels {
    private BitmapPixels() {
    }

    static Pixels of(Bitmap bitmap) {
        int w = bitmap.getWidth();
        int h = bitmap.getHeight();
        int[] argb = new int[w * h];
        bitmap.getPixels(argb, 0, w, 0, 0, w, h);
        return Pixels.fromArgb(argb, w, h);
    }
}
