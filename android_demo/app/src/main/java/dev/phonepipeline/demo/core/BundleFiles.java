package dev.phonepipeline.demo.core;

import java.io.IOException;
import java.io.InputStream;

/** Read access to a bundle's files by their relative path: app assets on a phone, a directory on a host. */
public interface BundleFiles {
    InputStream open(String relativePath) throws IOException;
}
