package io.github.churnplatform.flink.udf;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.types.Row;

import static io.github.churnplatform.flink.udf.Records.Field;
import static io.github.churnplatform.flink.udf.Records.text;

/**
 * PARSE_WEB_EVENT(payload): the web event's fields and its dead-letter reason (NULL when valid),
 * from one parse. The fields are NULL when the record is invalid.
 */
public class ParseWebEvent extends ParseFunction {
    public static final String TYPE = "ROW<reason STRING, event_id STRING, customer_id STRING, session_id STRING, "
            + "event_type STRING, page_url STRING, product_id STRING, search_query STRING, device_type STRING, "
            + "country STRING, utm_source STRING>";

    static final Field[] FIELDS = {
        Field.matching("event_id", Records.UUID_RE, "not a UUID"),
        Field.string("customer_id"), Field.string("session_id"), Field.string("event_type"),
        Field.optional("page_url"), Field.optional("product_id"), Field.optional("search_query"),
        Field.string("device_type"),
        Field.matching("country", Records.COUNTRY_RE, "expected an ISO 3166 alpha-2 code"),
        Field.optional("utm_source"),
        Field.timestamp("event_time"),
    };

    @DataTypeHint(TYPE)
    public Row eval(String payload) {
        Records.Parsed parsed = Records.parse(payload);
        if (parsed.reason != null) {
            return invalid(parsed.reason);
        }
        JsonNode o = parsed.root;
        String reason = Records.checkFields(o, FIELDS);
        if (reason == null) {
            String type = o.get("event_type").textValue();
            if (!Records.WEB_EVENT_TYPES.contains(type)) {
                reason = "unknown event_type: " + type;
            }
        }
        if (reason != null) {
            return invalid(reason);
        }
        return Row.of(null, text(o.get("event_id")), text(o.get("customer_id")), text(o.get("session_id")),
                text(o.get("event_type")), text(o.get("page_url")), text(o.get("product_id")),
                text(o.get("search_query")), text(o.get("device_type")), text(o.get("country")),
                text(o.get("utm_source")));
    }

    private static Row invalid(String reason) {
        return Row.of(reason, null, null, null, null, null, null, null, null, null, null);
    }
}
