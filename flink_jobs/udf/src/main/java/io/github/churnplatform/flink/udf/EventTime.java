package io.github.churnplatform.flink.udf;

import org.apache.flink.shaded.jackson2.com.fasterxml.jackson.databind.JsonNode;
import org.apache.flink.table.annotation.DataTypeHint;
import org.apache.flink.table.functions.ScalarFunction;

import java.time.LocalDateTime;

/**
 * EVENT_TIME(payload, field): the record's event time as TIMESTAMP(3) (UTC), from epoch millis or an
 * ISO-8601 "...Z" string; NULL when the record or the field is not valid. Used by the sources' computed
 * rowtime column; the parse is cached per thread for the PARSE_* call that follows on the same record.
 */
public class EventTime extends ScalarFunction {
    @DataTypeHint("TIMESTAMP(3)")
    public LocalDateTime eval(String payload, String field) {
        Records.Parsed parsed = Records.parse(payload);
        if (parsed.reason != null || field == null) {
            return null;
        }
        JsonNode v = parsed.root.get(field);
        // the same acceptance as the field rules: a string, or a number written without exponent
        if (Records.absent(v) || !(v.isTextual() || Records.plainNumber(v))) {
            return null;
        }
        return Records.timestamp(v);
    }
}
