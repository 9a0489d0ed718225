package io.github.churnplatform.flink.udf;

import org.apache.flink.table.functions.ScalarFunction;

/** What PARSE_WEB_EVENT and PARSE_ORDER share: a ROW of fields from one parse, called once per record. */
public abstract class ParseFunction extends ScalarFunction {
    /**
     * Declared non-deterministic only so that the planner keeps one call per record: a deterministic
     * call whose ROW is read field by field is inlined into one call per field by the calc merge
     * (FlinkCalcMergeRule), i.e. a parse per field. The result does depend on the payload alone.
     */
    @Override
    public boolean isDeterministic() {
        return false;
    }
}
