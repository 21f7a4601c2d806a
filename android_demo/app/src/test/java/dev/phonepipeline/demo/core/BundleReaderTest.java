package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertArrayEquals;
import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.Charset;
import java.security.MessageDigest;
import java.util.HashMap;
import java.util.Map;
import org.junit.Test;

public class BundleReaderTest {
    private static final byte[] MODEL = "not really a model".getBytes(Charset.forName("UTF-8"));

    @Test
    public void copiesAnArtifactWhoseHashMatches() throws Exception {
        BundleReader reader = new BundleReader(files(hex(MODEL)));
        Artifact a = reader.metadata().artifacts.get(0);
        ByteArrayOutputStream out = new ByteArrayOutputStream();
        reader.copyVerified(a, out);
        assertArrayEquals(MODEL, out.toByteArray());
    }

    @Test
    public void refusesAnArtifactWhoseBytesChanged() throws Exception {
        BundleReader reader = new BundleReader(files(Fixtures.SHA));
        Artifact a = reader.metadata().artifacts.get(0);
        try {
            reader.copyVerified(a, new ByteArrayOutputStream());
            fail("accepted a file with the wrong hash");
        } catch (IOException ex) {
            assertTrue(ex.getMessage().startsWith("models/model_fp32.tflite: SHA-256 "));
        }
    }

    @Test
    public void readsTheMetadata() throws Exception {
        assertEquals(3, new BundleReader(files(Fixtures.SHA)).metadata().artifacts.size());
    }

    private static BundleFiles files(String sha) {
        final Map<String, byte[]> files = new HashMap<String, byte[]>();
        files.put("metadata.json", Fixtures.metadata().replace(Fixtures.SHA, sha).getBytes(Charset.forName("UTF-8")));
        files.put("models/model_fp32.tflite", MODEL);
        return new BundleFiles() {
            @Override
            public InputStream open(String path) throws IOException {
                byte[] b = files.get(path);
                if (b == null) {
                    throw new FileNotFoundException(path);
                }
                return new ByteArrayInputStream(b);
            }
        };
    }

    private static String hex(byte[] data) throws Exception {
        return BundleReader.hex(MessageDigest.getInstance("SHA-256").digest(data));
    }
}
