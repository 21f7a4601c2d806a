package dev.phonepipeline.demo.app;

import android.content.res.AssetManager;
import dev.phonepipeline.demo.core.BundleFiles;
import java.io.IOException;
import java.io.InputStream;

/** The bundle that `make android-demo` copied into assets/bundle/. */
final class AssetBundleFiles implements BundleFiles {
    static final String ROOT = "bundle/";
    private final AssetManager assets;

    AssetBundleFiles(AssetManager assets) {
        this.assets = assets;
    }

    @Override
    public InputStream open(String relativePath) throws IOException {
        return assets.open(ROOT + relativePath);
    }
}
