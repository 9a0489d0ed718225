package io.github.churnplatform.flink.udf;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.core.JsonProcessingException;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.ObjectMapper;

import java.math.BigDecimal;
import java.math.RoundingMode;
import java.time.Instant;
import java.time.LocalDateTime;
import java.time.YearMonth;
import java.time.ZoneOffset;
import java.util.Set;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * Parsing and validation of the job's two record kinds, one Jackson parse per record.
 *
 * <p>The rules and reasons are those of flink_jobs/pipeline.py's SQL (its docstring and
 * flink_jobs/tests assert them), in the same order: the first failing rule names the reason.
 * The SQL looked at each value through JSON_QUERY(... WITH ARRAY WRAPPER) / JSON_VALUE, i.e. at
 * Jackson's serialisation of it; {@link #plainNumber} reproduces that (a float is written as
 * Double.toString writes it, so 1e3 is "1000.0", a number, but 1e20 is "1.0E20", not one).
 */
final class Records {
    private Records() {}

    static final ObjectMapper MAPPER = new ObjectMapper();

    static final Pattern UUID_RE =
            Pattern.compile("^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$");
    static final Pattern COUNTRY_RE = Pattern.compile("^[A-Z]{2}$");
    static final Pattern CURRENCY_RE = Pattern.compile("^[A-Z]{3}$");
    private static final Pattern NUMBER_RE = Pattern.compile("^-?[0-9]+(\\.[0-9]+)?$");
    private static final Pattern QUANTITY_RE = Pattern.compile("^[1-9][0-9]{0,5}$");
    private static final Pattern PRICE_RE = Pattern.compile("^[0-9]+(\\.[0-9]+)?$");
    private static final Pattern MILLIS_RE = Pattern.compile("^[0-9]{10,15}$");
    private static final Pattern ISO_RE = Pattern.compile(
            "^([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})(\\.([0-9]{1,9}))?Z$");

    static final int MAX_ITEMS = 20;
    static final Set<String> WEB_EVENT_TYPES = Set.of("page_view", "product_view", "search", "add_to_cart",
            "remove_from_cart", "checkout_start", "checkout_success", "login", "logout");
    static final Set<String> ORDER_STATUSES = Set.of("completed", "cancelled", "refunded");

    enum Kind { STRING, NUMBER, TIMESTAMP }

    /** One top-level field's rules: required, JSON type, pattern (strings), timestamp format. */
    record Field(String name, Kind kind, boolean required, Pattern pattern, String patternReason) {
        static Field string(String name) { return new Field(name, Kind.STRING, true, null, null); }
        static Field optional(String name) { return new Field(name, Kind.STRING, false, null, null); }
        static Field matching(String name, Pattern p, String reason) { return new Field(name, Kind.STRING, true, p, reason); }
        static Field timestamp(String name) { return new Field(name, Kind.TIMESTAMP, true, null, null); }
        static Field number(String name) { return new Field(name, Kind.NUMBER, true, null, null); }
    }

    // -- parsing, shared by the functions that see the same record --------------------------------------
    /** The outcome of parsing one payload: the root node, or the record-level reason. */
    static final class Parsed {
        final String payload;
        final JsonNode root;     // an object node when reason is null
        final String reason;

        Parsed(String payload, JsonNode root, String reason) {
            this.payload = payload;
            this.root = root;
            this.reason = reason;
        }
    }

    // The job evaluates EVENT_TIME(payload) in the source's computed column and then PARSE_*(payload)
    // in the next (chained) operator on the same thread: a one-entry cache per thread makes that one
    // parse. A hit is an identical String (reference or content); the cost of a miss is one equals().
    private static final ThreadLocal<Parsed> LAST = new ThreadLocal<>();

    static Parsed parse(String payload) {
        Parsed last = LAST.get();
        if (last != null && (last.payload == payload || (payload != null && payload.equals(last.payload)))) {
            return last;
        }
        Parsed parsed = parseUncached(payload);
        LAST.set(parsed);
        return parsed;
    }

    static Parsed parseUncached(String payload) {
        if (payload == null || trimSpaces(payload).isEmpty()) {
            return new Parsed(payload, null, "empty record");
        }
        JsonNode root;
        try {
            root = MAPPER.readTree(payload);
        } catch (JsonProcessingException | RuntimeException e) {
            return new Parsed(payload, null, "invalid JSON");
        }
        if (root == null || root.isMissingNode()) {
            return new Parsed(payload, null, "invalid JSON");
        }
        if (!root.isObject()) {
            return new Parsed(payload, root, "invalid JSON: not an object");
        }
        return new Parsed(payload, root, null);
    }

    /** SQL TRIM: leading and trailing spaces (U+0020) only. */
    private static String trimSpaces(String s) {
        int start = 0;
        int end = s.length();
        while (start < end && s.charAt(start) == ' ') {
            start++;
        }
        while (end > start && s.charAt(end - 1) == ' ') {
            end--;
        }
        return s.substring(start, end);
    }

    // -- values as the SQL saw them ---------------------------------------------------------------------
    static boolean absent(JsonNode v) {
        return v == null || v.isNull();
    }

    /** JSON_VALUE: a string's text, a number's (or boolean's) text as Jackson writes it; NULL otherwise. */
    static String text(JsonNode v) {
        if (absent(v)) {
            return null;
        }
        if (v.isTextual()) {
            return v.textValue();
        }
        return v.isValueNode() ? v.asText() : null;
    }

    /** A JSON number written without exponent (what '^-?[0-9]+(\.[0-9]+)?$' accepted). */
    static boolean plainNumber(JsonNode v) {
        return v != null && v.isNumber() && NUMBER_RE.matcher(v.asText()).find();
    }

    /** TIMESTAMP(3), UTC: epoch millis (10-15 digits, number or string) or ISO-8601 "...Z"; else null. */
    static LocalDateTime timestamp(JsonNode v) {
        String raw = text(v);
        if (raw == null) {
            return null;
        }
        if (MILLIS_RE.matcher(raw).find()) {
            return LocalDateTime.ofInstant(Instant.ofEpochMilli(Long.parseLong(raw.trim())), ZoneOffset.UTC);
        }
        Matcher m = ISO_RE.matcher(raw);
        if (!m.find()) {
            return null;
        }
        int nanos = 0;
        if (m.group(8) != null) {
            String fraction = (m.group(8) + "000000000").substring(0, 9);
            nanos = Integer.parseInt(fraction) / 1_000_000 * 1_000_000;   // TIMESTAMP(3): truncated to ms
        }
        return isoDateTime(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)), Integer.parseInt(m.group(3)),
                Integer.parseInt(m.group(4)), Integer.parseInt(m.group(5)), Integer.parseInt(m.group(6)), nanos);
    }

    /**
     * What CAST(... AS TIMESTAMP(3)) made of the digits, where it gave a value: a day 29-31 past the
     * month's end is clamped to its last day ("2026-02-30" is Feb 28) and 24:00:00 is the next midnight.
     * Where that CAST threw (month 13, day 32, 25:00, minute or second 60, year 0), the old job failed
     * on the record; here it is null, i.e. a dead letter ("invalid ...: expected ISO-8601 ...").
     */
    static LocalDateTime isoDateTime(int year, int month, int day, int hour, int minute, int second, int nanos) {
        if (year < 1 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || minute > 59 || second > 59
                || (hour == 24 && (minute != 0 || second != 0 || nanos != 0))) {
            return null;
        }
        day = Math.min(day, YearMonth.of(year, month).lengthOfMonth());
        LocalDateTime t = LocalDateTime.of(year, month, day, hour % 24, minute, second, nanos);
        return hour == 24 ? t.plusDays(1) : t;
    }

    // -- the rules ------------------------------------------------------------------------------------
    /** The first failing field rule's reason, or null. */
    static String checkFields(JsonNode obj, Field[] fields) {
        for (Field f : fields) {
            JsonNode v = obj.get(f.name());
            boolean present = !absent(v);
            if (f.required() && !present) {
                return "missing required field: " + f.name();
            }
            if (present) {
                switch (f.kind()) {
                    case STRING:
                        if (!v.isTextual()) {
                            return "wrong type for " + f.name() + ": expected string";
                        }
                        break;
                    case TIMESTAMP:
                        if (!(v.isTextual() || plainNumber(v))) {
                            return "wrong type for " + f.name() + ": expected ISO-8601 string or epoch millis";
                        }
                        break;
                    default:
                        if (!plainNumber(v)) {
                            return "wrong type for " + f.name() + ": expected number";
                        }
                }
                if (f.pattern() != null && !f.pattern().matcher(text(v)).find()) {
                    return "invalid " + f.name() + ": " + f.patternReason();
                }
            }
            if (f.kind() == Kind.TIMESTAMP && timestamp(v) == null) {
                return "invalid " + f.name() + ": expected ISO-8601 UTC or epoch millis";
            }
        }
        return null;
    }

    /** The items rules of an order (after its field rules), or null. */
    static String checkItems(JsonNode items) {
        if (absent(items)) {
            return "missing required field: items";
        }
        if (!items.isArray()) {
            return "wrong type for items: expected array";
        }
        int n = items.size();
        if (n == 0) {
            return "invalid items: empty";
        }
        if (n > MAX_ITEMS) {
            return "invalid items: more than " + MAX_ITEMS + " line items";
        }
        for (JsonNode item : items) {
            JsonNode p = item.isObject() ? item.get("product_id") : null;
            // the SQL matched the serialised list against '"[^"]*"': a string without a double quote
            if (p == null || !p.isTextual() || p.textValue().indexOf('"') >= 0) {
                return "invalid items: every item needs product_id (string)";
            }
        }
        for (JsonNode item : items) {
            JsonNode q = item.get("quantity");
            if (q == null || !q.isNumber() || !QUANTITY_RE.matcher(q.asText()).find()) {
                return "invalid items: every item needs quantity (positive integer)";
            }
        }
        for (JsonNode item : items) {
            JsonNode u = item.get("unit_price");
            if (u == null || !u.isNumber() || !PRICE_RE.matcher(u.asText()).find()) {
                return "invalid items: every item needs unit_price (non-negative number)";
            }
        }
        return null;
    }

    /** Sum of the item quantities (valid items only: 1..999999 each, at most MAX_ITEMS). */
    static int itemCount(JsonNode items) {
        int total = 0;
        for (JsonNode item : items) {
            total += item.get("quantity").asInt();
        }
        return total;
    }

    /** CAST(JSON_VALUE(...) AS DECIMAL(12, 2)): half-up; NULL when it does not fit. */
    static BigDecimal decimal(JsonNode v) {
        BigDecimal d = new BigDecimal(v.asText()).setScale(2, RoundingMode.HALF_UP);
        return d.precision() > 12 ? null : d;
    }

    static String json(JsonNode v) {
        try {
            return MAPPER.writeValueAsString(v);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException(e);
        }
    }
}
