package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.List;
import java.util.Map;
import org.junit.Test;

public class JsonTest {
    @Test
    public void readsNestedValuesWithIntegersAndDoublesApart() {
        Map<?, ?> m = (Map<?, ?>) Json.parse(" {\"a\": [1, -2.5e1, true, null], \"b\": \"x\\u00e9\\n\"} ");
        List<?> a = (List<?>) m.get("a");
        assertEquals(1L, a.get(0));
        assertEquals(-25.0, a.get(1));
        assertEquals(Boolean.TRUE, a.get(2));
        assertNull(a.get(3));
        assertEquals("x\u00e9\n", m.get("b"));
    }

    @Test
    public void rejectsTrailingCommasDuplicateKeysAndTrailingText() {
        for (String bad : new String[] {"[1,]", "{\"a\":1,\"a\":2}", "{} x", "{\"a\" 1}", "\"open"}) {
            try {
                Json.parse(bad);
                fail("accepted " + bad);
            } catch (IllegalArgumentException ex) {
                assertTrue(ex.getMessage().startsWith("not valid JSON at character"));
            }
        }
    }
}
