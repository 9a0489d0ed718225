package io.github.churnplatform.flink.udf;

import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

import java.math.BigDecimal;
import java.time.LocalDateTime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

/** The dead-letter reasons of flink_jobs/tests/test_pipeline.py, and the parsed fields of valid records. */
class RecordsTest {
    static final String UUID = "00000000-0000-4000-8000-000000000001";
    static final String WEB = "{\"event_id\":\"" + UUID + "\",\"customer_id\":\"c1\",\"session_id\":\"s1\","
            + "\"event_type\":\"page_view\",\"page_url\":\"/\",\"product_id\":null,\"search_query\":null,"
            + "\"device_type\":\"mobile\",\"country\":\"DE\",\"utm_source\":null,\"event_time\":1767261600000}";
    static final String ITEMS = "[{\"product_id\":\"p1\",\"quantity\":2,\"unit_price\":5.0},"
            + "{\"product_id\":\"p2\",\"quantity\":1,\"unit_price\":2.5}]";
    static final String ORDER = "{\"order_id\":\"" + UUID + "\",\"customer_id\":\"c1\",\"session_id\":\"s1\","
            + "\"order_time\":\"2026-01-01T10:00:06Z\",\"items\":" + ITEMS + ",\"total_amount\":12.5,"
            + "\"currency\":\"USD\",\"payment_method\":\"card\",\"order_status\":\"completed\",\"shipping_country\":\"DE\"}";

    final ParseWebEvent web = new ParseWebEvent();
    final ParseOrder order = new ParseOrder();

    static String with(String record, String field, String json) {
        // replace the field's value (json == null: drop the field)
        String pattern = "\"" + field + "\":(\"[^\"]*\"|null|-?[0-9.]+|\\[.*?\\](?=,\"))";
        String replaced = json == null ? record.replaceFirst(pattern + ",?", "") : record.replaceFirst(pattern, "\"" + field + "\":" + json);
        return replaced.replace(",}", "}");
    }

    String webReason(String payload) {
        return (String) web.eval(payload).getField(0);
    }

    String orderReason(String payload) {
        return (String) order.eval(payload).getField(0);
    }

    @Test
    void validWebEvent() {
        Row r = web.eval(WEB);
        assertEquals(Row.of(null, UUID, "c1", "s1", "page_view", "/", null, null, "mobile", "DE", null), r);
        assertEquals(LocalDateTime.of(2026, 1, 1, 10, 0), new EventTime().eval(WEB, "event_time"));
    }

    @Test
    void timeFormats() {
        EventTime t = new EventTime();
        LocalDateTime expected = LocalDateTime.of(2026, 1, 1, 10, 0, 1, 250_000_000);
        assertEquals(expected, t.eval("{\"t\":\"2026-01-01T10:00:01.250Z\"}", "t"));
        assertEquals(expected, t.eval("{\"t\":1767261601250}", "t"));
        assertEquals(expected, t.eval("{\"t\":\"1767261601250\"}", "t"));
        assertEquals(expected, t.eval("{\"t\":\"2026-01-01T10:00:01.250999Z\"}", "t"));
        assertEquals(LocalDateTime.of(2026, 1, 1, 10, 0, 1), t.eval("{\"t\":\"2026-01-01T10:00:01Z\"}", "t"));
        assertNull(t.eval("{\"t\":\"2025-01-06T00:30:37.215000+00:00\"}", "t"));
        assertNull(t.eval("{\"t\":\"2026-01-01T10:00:01\"}", "t"));
        assertNull(t.eval("{\"t\":1.7E12}", "t"));
        assertNull(t.eval("{\"t\":123}", "t"));
        assertNull(t.eval("{\"t\":true}", "t"));
        assertNull(t.eval("{}", "t"));
        assertNull(t.eval("nope", "t"));
    }

    @Test
    void isoDatesAsTheSqlCastResolvedThem() {
        EventTime t = new EventTime();
        // Flink 2.0.2's CAST('2026-02-30 10:00:00' AS TIMESTAMP(3)) clamps, 24:00:00 rolls over
        assertEquals(LocalDateTime.of(2026, 2, 28, 10, 0), t.eval("{\"t\":\"2026-02-30T10:00:00Z\"}", "t"));
        assertEquals(LocalDateTime.of(2024, 2, 29, 0, 0), t.eval("{\"t\":\"2024-02-31T00:00:00Z\"}", "t"));
        assertEquals(LocalDateTime.of(2026, 4, 30, 10, 0), t.eval("{\"t\":\"2026-04-31T10:00:00Z\"}", "t"));
        assertEquals(LocalDateTime.of(2026, 1, 2, 0, 0), t.eval("{\"t\":\"2026-01-01T24:00:00Z\"}", "t"));
        // where that CAST threw (the old job failed on the record): a dead letter
        for (String bad : new String[] {"2026-13-01T10:00:00Z", "2026-01-32T10:00:00Z", "2026-01-01T25:00:00Z",
                "2026-01-01T10:60:00Z", "2026-01-01T10:00:60Z", "0000-01-01T00:00:00Z", "2026-00-01T00:00:00Z"}) {
            assertNull(t.eval("{\"t\":\"" + bad + "\"}", "t"), bad);
        }
        assertEquals("invalid event_time: expected ISO-8601 UTC or epoch millis",
                webReason(with(WEB, "event_time", "\"2026-13-01T10:00:00Z\"")));
    }

    @Test
    void webReasons() {
        assertEquals("invalid JSON", webReason("{\"event_id\": \"x\", \"customer_id\": "));
        assertEquals("invalid JSON: not an object", webReason("[1, 2]"));
        assertEquals("empty record", webReason(""));
        assertEquals("empty record", webReason("   "));
        assertEquals("empty record", webReason(null));
        assertEquals("missing required field: session_id", webReason(with(WEB, "session_id", null)));
        assertEquals("missing required field: session_id", webReason(with(WEB, "session_id", "null")));
        assertEquals("wrong type for customer_id: expected string", webReason(with(WEB, "customer_id", "42")));
        assertEquals("invalid event_id: not a UUID", webReason(with(WEB, "event_id", "\"not-a-uuid\"")));
        assertEquals("unknown event_type: teleport", webReason(with(WEB, "event_type", "\"teleport\"")));
        assertEquals("invalid event_time: expected ISO-8601 UTC or epoch millis",
                webReason(with(WEB, "event_time", "\"2025-01-06T00:30:37.215000+00:00\"")));
        assertEquals("missing required field: event_time", webReason(with(WEB, "event_time", "null")));
        assertEquals("wrong type for event_time: expected ISO-8601 string or epoch millis",
                webReason(with(WEB, "event_time", "{}")));
        assertEquals("invalid country: expected an ISO 3166 alpha-2 code", webReason(with(WEB, "country", "\"Germany\"")));
        assertEquals("wrong type for product_id: expected string", webReason(with(WEB, "product_id", "7")));
        assertNull(webReason(with(WEB, "product_id", "\"P1\"")));
    }

    @Test
    void validOrder() {
        Row r = order.eval(ORDER);
        assertEquals(Row.of(null, UUID, "c1", "s1", ITEMS, 3, new BigDecimal("12.50"), "USD", "card", "completed", "DE"), r);
        assertEquals(new BigDecimal("10.01"), order.eval(with(ORDER, "total_amount", "10.005")).getField(6));
    }

    @Test
    void orderReasons() {
        assertEquals("unknown order_status: lost_in_transit", orderReason(with(ORDER, "order_status", "\"lost_in_transit\"")));
        assertEquals("wrong type for total_amount: expected number", orderReason(with(ORDER, "total_amount", "\"43.29\"")));
        assertEquals("wrong type for total_amount: expected number", orderReason(with(ORDER, "total_amount", "1e20")));
        assertEquals("invalid total_amount: out of range", orderReason(with(ORDER, "total_amount", "-10000000000")));
        assertEquals("invalid items: every item needs quantity (positive integer)",
                orderReason(with(ORDER, "items", "[{\"product_id\":\"p\",\"quantity\":\"two\",\"unit_price\":10.0}]")));
        assertEquals("invalid items: every item needs quantity (positive integer)",
                orderReason(with(ORDER, "items", "[{\"product_id\":\"p\",\"quantity\":0,\"unit_price\":10.0}]")));
        assertEquals("invalid items: every item needs quantity (positive integer)",
                orderReason(with(ORDER, "items", "[{\"product_id\":\"p\",\"quantity\":2.0,\"unit_price\":10.0}]")));
        assertEquals("invalid items: every item needs product_id (string)",
                orderReason(with(ORDER, "items", "[{\"quantity\":1,\"unit_price\":10.0}]")));
        assertEquals("invalid items: every item needs product_id (string)", orderReason(with(ORDER, "items", "[1]")));
        assertEquals("invalid items: every item needs unit_price (non-negative number)",
                orderReason(with(ORDER, "items", "[{\"product_id\":\"p\",\"quantity\":1,\"unit_price\":-1}]")));
        assertEquals("invalid items: empty", orderReason(with(ORDER, "items", "[]")));
        assertEquals("wrong type for items: expected array", orderReason(with(ORDER, "items", "{\"p\":1}")));
        assertEquals("missing required field: items", orderReason(with(ORDER, "items", null)));
        String many = "[" + "{\"product_id\":\"p\",\"quantity\":1,\"unit_price\":1.0},".repeat(21);
        assertEquals("invalid items: more than 20 line items", orderReason(with(ORDER, "items", many.substring(0, many.length() - 1) + "]")));
        assertEquals("invalid currency: expected an ISO 4217 code", orderReason(with(ORDER, "currency", "\"usd\"")));
        assertNull(orderReason(with(ORDER, "session_id", null)));
    }
}
