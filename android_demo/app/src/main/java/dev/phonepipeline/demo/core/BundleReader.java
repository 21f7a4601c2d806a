package dev.phonepipeline.demo.core;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.Charset;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;

/** Reads a bundle's metadata and copies artifacts out of it, checking each file against its recorded SHA-256. */
public final class BundleReader {
    public static final String METADATA = "metadata.json";
    private final BundleFiles files;

    public BundleReader(BundleFiles files) {
        this.files = files;
    }

    public BundleMetadata metadata() throws IOException, BundleFormatException {
        InputStream in = files.open(METADATA);
        try {
            return BundleMetadata.parse(new String(readAll(in), Charset.forName("UTF-8")));
        } finally {
            in.close();
        }
    }

    /** Copies an artifact to {@code out} and throws IOException if its bytes do not match the metadata's hash. */
    public void copyVerified(Artifact artifact, OutputStream out) throws IOException {
        MessageDigest sha = sha256();
        InputStream in = files.open(artifact.file);
        try {
            byte[] buf = new byte[1 << 16];
            int n;
            while ((n = in.read(buf)) > 0) {
                sha.update(buf, 0, n);
                out.write(buf, 0, n);
            }
        } finally {
            in.close();
        }
        String actual = hex(sha.digest());
        if (!actual.equals(artifact.sha256)) {
            throw new IOException(artifact.file + ": SHA-256 " + actual + " differs from the metadata's "
                    + artifact.sha256 + " (a damaged or replaced bundle)");
        }
    }

    public static byte[] readAll(InputStream in) throws IOException {
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        byte[] buf = new byte[1 << 14];
        int n;
        while ((n = in.read(buf)) > 0) {
            out.write(buf, 0, n);
        }
        return out.toByteArray();
    }

    static String hex(byte[] digest) {
        StringBuilder s = new StringBuilder(digest.length * 2);
        for (byte b : digest) {
            s.append(Character.forDigit((b >> 4) & 0xF, 16)).append(Character.forDigit(b & 0xF, 16));
        }
        return s.toString();
    }

    private static MessageDigest sha256() {
        try {
            return MessageDigest.getInstance("SHA-256");
        } catch (NoSuchAlgorithmException ex) {
            throw new IllegalStateException("SHA-256 is part of every Java platform", ex);
        }
    }
}
