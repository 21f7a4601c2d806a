package dev.phonepipeline.demo.core;

import static org.junit.Assert.assertEquals;

import org.junit.Test;

public class LatencyStatsTest {
    @Test
    public void medianAndP90UseNearestRank() {
        LatencyStats s = new LatencyStats();
        for (int ms = 10; ms >= 1; ms--) {
            s.add(ms * 1_000_000L);
        }
        assertEquals(10, s.count());
        assertEquals(5.0, s.medianMs(), 0);
        assertEquals(9.0, s.p90Ms(), 0);
        assertEquals(5.5, s.meanMs(), 1e-12);
        assertEquals(1.0, s.minMs(), 0);
    }

    @Test
    public void growsPastItsInitialCapacity() {
        LatencyStats s = new LatencyStats();
        for (int i = 0; i < 100; i++) {
            s.add(1000);
        }
        assertEquals(100, s.count());
    }

    @Test(expected = IllegalStateException.class)
    public void refusesStatisticsOfNothing() {
        new LatencyStats().medianMs();
    }
}
