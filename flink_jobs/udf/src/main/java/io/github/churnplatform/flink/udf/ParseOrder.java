package io.github.churnplatform.flink.udf;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.types.Row;

import static io.github.churnplatform.flink.udf.Records.Field;
import static io.github.churnplatform.flink.udf.Records.text;

/**
 * PARSE_ORDER(payload): the order's fields (items as compact JSON, their quantity sum, the amount as
 * DECIMAL(12, 2)) and its dead-letter reason (NULL when valid), from one parse.
 */
public class ParseOrder extends ParseFunction {
    public static final String TYPE = "ROW<reason STRING, order_id STRING, customer_id STRING, session_id STRING, "
            + "items STRING, item_count INT, total_amount DECIMAL(12, 2), currency STRING, payment_method STRING, "
            + "order_status STRING, shipping_country STRING>";

    static final Field[] FIELDS = {
        Field.matching("order_id", Records.UUID_RE, "not a UUID"),
        Field.string("customer_id"), Field.optional("session_id"),
        Field.timestamp("order_time"),
        Field.number("total_amount"),
        Field.matching("currency", Records.CURRENCY_RE, "expected an ISO 4217 code"),
        Field.string("payment_method"), Field.string("order_status"),
        Field.matching("shipping_country", Records.COUNTRY_RE, "expected an ISO 3166 alpha-2 code"),
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
            reason = Records.checkItems(o.get("items"));
        }
        if (reason == null) {
            String status = o.get("order_status").textValue();
            if (!Records.ORDER_STATUSES.contains(status)) {
                reason = "unknown order_status: " + status;
            } else if (Math.abs(Double.parseDouble(o.get("total_amount").asText())) >= 1e10) {
                reason = "invalid total_amount: out of range";
            }
        }
        if (reason != null) {
            return invalid(reason);
        }
        JsonNode items = o.get("items");
        return Row.of(null, text(o.get("order_id")), text(o.get("customer_id")), text(o.get("session_id")),
                Records.json(items), Records.itemCount(items), Records.decimal(o.get("total_amount")),
                text(o.get("currency")), text(o.get("payment_method")), text(o.get("order_status")),
                text(o.get("shipping_country")));
    }

    private static Row invalid(String reason) {
        return Row.of(reason, null, null, null, null, null, null, null, null, null, null);
    }
}
