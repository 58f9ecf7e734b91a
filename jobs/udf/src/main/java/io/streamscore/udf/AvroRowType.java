package io.streamscore.udf;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

import org.apache.avro.Schema;
import org.apache.avro.SchemaParseException;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.api.ValidationException;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.types.DataType;

/**
 * Maps a flat Avro reader schema (a record of primitive / enum fields, optionally as
 * {@code ["null", T]} unions) to the Flink ROW returned by {@link ConfluentAvroDecode}.
 *
 * <p>The row is {@code ok BOOLEAN NOT NULL, reason_code STRING, reason STRING} followed by
 * one column per reader field, in reader order. Field columns are always nullable because
 * a failed decode leaves them all NULL.
 */
public final class AvroRowType {

    /** Number of leading tag columns (ok, reason_code, reason) before the field columns. */
    public static final int TAG_COLUMNS = 3;

    private static final Set<String> TAG_NAMES = Set.of("ok", "reason_code", "reason");

    private AvroRowType() {}

    /** Parses and checks a reader schema; throws {@link ValidationException} if unusable. */
    public static Schema parseReader(String json) {
        Schema schema;
        try {
            schema = new Schema.Parser().parse(json);
        } catch (SchemaParseException | NullPointerException e) {
            throw new ValidationException("Invalid Avro reader schema: " + e.getMessage(), e);
        }
        if (schema.getType() != Schema.Type.RECORD) {
            throw new ValidationException(
                    "Avro reader schema must be a record, got " + schema.getType());
        }
        Set<String> seen = new HashSet<>();
        for (Schema.Field field : schema.getFields()) {
            if (TAG_NAMES.contains(field.name()) || !seen.add(field.name())) {
                throw new ValidationException(
                        "Avro field name '" + field.name() + "' clashes with an output column");
            }
            fieldType(field); // fails early on unsupported types
        }
        return schema;
    }

    /** The full output row type for a reader schema. */
    public static DataType outputType(Schema reader) {
        List<DataTypes.Field> fields = new ArrayList<>();
        fields.add(DataTypes.FIELD("ok", DataTypes.BOOLEAN().notNull()));
        fields.add(DataTypes.FIELD("reason_code", DataTypes.STRING()));
        fields.add(DataTypes.FIELD("reason", DataTypes.STRING()));
        for (Schema.Field field : reader.getFields()) {
            fields.add(DataTypes.FIELD(field.name(), fieldType(field)));
        }
        // Bridged to Flink's internal RowData: no per-record Row -> RowData conversion.
        return DataTypes.ROW(fields).notNull().bridgedTo(RowData.class);
    }

    /** Whether a reader field's decoded value must be turned into a Java String. */
    public static boolean isStringLike(Schema.Field field) {
        Schema.Type type = unwrapNullable(field).getType();
        return type == Schema.Type.STRING || type == Schema.Type.ENUM;
    }

    private static DataType fieldType(Schema.Field field) {
        Schema schema = unwrapNullable(field);
        // Logical types are mapped by their physical type: timestamp-millis long -> BIGINT
        // (epoch millis), date int -> INT.
        switch (schema.getType()) {
            case INT:
                return DataTypes.INT();
            case LONG:
                return DataTypes.BIGINT();
            case FLOAT:
                return DataTypes.FLOAT();
            case DOUBLE:
                return DataTypes.DOUBLE();
            case BOOLEAN:
                return DataTypes.BOOLEAN();
            case STRING:
            case ENUM:
                return DataTypes.STRING();
            default:
                throw new ValidationException(
                        "Unsupported Avro type for field '" + field.name() + "': " + field.schema());
        }
    }

    private static Schema unwrapNullable(Schema.Field field) {
        Schema schema = field.schema();
        if (schema.getType() != Schema.Type.UNION) {
            return schema;
        }
        List<Schema> branches = schema.getTypes();
        if (branches.size() == 2) {
            if (branches.get(0).getType() == Schema.Type.NULL) {
                return branches.get(1);
            }
            if (branches.get(1).getType() == Schema.Type.NULL) {
                return branches.get(0);
            }
        }
        throw new ValidationException(
                "Unsupported union for field '" + field.name() + "' (only [\"null\", T]): " + schema);
    }
}
