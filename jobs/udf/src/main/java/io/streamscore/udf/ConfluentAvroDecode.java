package io.streamscore.udf;

import java.io.IOException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

import org.apache.avro.AvroTypeException;
import org.apache.avro.Schema;
import org.apache.avro.SchemaCompatibility;
import org.apache.avro.SystemLimitException;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.Decoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.avro.io.ResolvingDecoder;
import org.apache.avro.util.Utf8;
import org.apache.flink.table.api.DataTypes;
import org.apache.flink.table.catalog.DataTypeFactory;
import org.apache.flink.table.data.GenericRowData;
import org.apache.flink.table.data.RowData;
import org.apache.flink.table.data.StringData;
import org.apache.flink.table.functions.FunctionContext;
import org.apache.flink.table.functions.ScalarFunction;
import org.apache.flink.table.functions.SpecializedFunction;
import org.apache.flink.table.functions.UserDefinedFunction;
import org.apache.flink.table.types.DataType;
import org.apache.flink.table.types.inference.ArgumentTypeStrategy;
import org.apache.flink.table.types.inference.CallContext;
import org.apache.flink.table.types.inference.InputTypeStrategies;
import org.apache.flink.table.types.inference.TypeInference;

/**
 * Decodes a Kafka record value in the Confluent wire format (magic 0x00, 4-byte big-endian
 * schema id, Avro binary body) into a ROW, never failing on a bad record.
 *
 * <pre>
 * decode_confluent(payload BYTES, '&lt;reader schema json&gt;', '&lt;registry url&gt;'
 *                  [, wait_ms INT [, '&lt;known writers json&gt;' [, '&lt;registry access json&gt;']]])
 *   -&gt; ROW&lt;ok BOOLEAN NOT NULL, reason_code STRING, reason STRING, &lt;one column per reader field&gt;&gt;
 * </pre>
 *
 * <p>The output type is derived at planning time from the schema literal; the planner then
 * calls {@link #specialize} and runs an instance built with both literals. An instance built
 * with {@link #ConfluentAvroDecode(String, String)} and registered as an object can instead be
 * called with the payload only. Bad records get {@code ok = false}, a {@code reason_code}
 * (empty, bad_magic, truncated, unknown_schema_id, registry_unavailable, wrong_schema, bad_body,
 * trailing_bytes: the codes of streamscore's RejectCode) and NULL field columns.
 *
 * <p>A registry that does not answer never turns a record into a dead letter: a record whose
 * schema id is not cached yet waits for it, retrying every second, for at most {@code wait_ms}
 * (default 5 minutes); after that the function throws, the task fails and Flink replays it from
 * the last checkpoint. Ids already seen keep decoding during an outage, and so do the ids given
 * in {@code known writers} (a JSON object from schema id to writer schema, e.g. the id the job
 * registered its event schema under at submission): a task restarted while the registry is
 * down decodes them without asking it.
 *
 * <p>A registry that needs a login or its own CA is reached with {@code registry access}
 * ({@link RegistryAccess}: a username and the paths of a password file and a CA file on the
 * TaskManager, never the password itself, which would show in the job's plan). A registry that
 * refuses the login (HTTP 401/403) or whose TLS fails (a certificate not trusted) fails the task at
 * once, naming the refusal: waiting would not mend it, and no record becomes a dead letter for it.
 */
public class ConfluentAvroDecode extends ScalarFunction implements SpecializedFunction {

    private static final long serialVersionUID = 1L;

    /** Largest Avro string accepted (Kafka's default message limit is 1 MiB). */
    static final int MAX_STRING_BYTES = 16 << 20;

    static {
        // Without a cap a corrupt length prefix makes Avro allocate up to 2 GiB before it
        // notices the payload is shorter (and an OutOfMemoryError would fail the job). The
        // property name is relocated with Avro, so this only limits this jar's copy of Avro.
        if (System.getProperty(SystemLimitException.MAX_STRING_LENGTH_PROPERTY) == null) {
            System.setProperty(
                    SystemLimitException.MAX_STRING_LENGTH_PROPERTY, String.valueOf(MAX_STRING_BYTES));
        }
    }

    static final long DEFAULT_WAIT_MS = 300_000;

    private final String readerSchemaJson;
    private final String registryUrl;
    private final long waitMs;
    private final String knownWritersJson;
    private final String accessJson;

    private transient Schema reader;
    private transient boolean[] stringColumns;
    private transient SchemaRegistryCache registry;
    private transient Map<Integer, Resolution> resolutions;
    private transient int lastId;
    private transient Resolution lastResolution;
    private transient BinaryDecoder decoder;
    private transient GenericRecord record;

    /** For registration by class name: schema and URL come from the literal arguments. */
    public ConfluentAvroDecode() {
        this(null, null);
    }

    /** For registration as an object: call it with the payload only. */
    public ConfluentAvroDecode(String readerSchemaJson, String registryUrl) {
        this(readerSchemaJson, registryUrl, DEFAULT_WAIT_MS);
    }

    /** As above, waiting at most {@code waitMs} for a registry that does not answer. */
    public ConfluentAvroDecode(String readerSchemaJson, String registryUrl, long waitMs) {
        this(readerSchemaJson, registryUrl, waitMs, null);
    }

    /** As above, with writer schemas known without the registry (JSON object: id to schema). */
    public ConfluentAvroDecode(String readerSchemaJson, String registryUrl, long waitMs, String knownWritersJson) {
        this(readerSchemaJson, registryUrl, waitMs, knownWritersJson, null);
    }

    /**
     * As above, reaching the registry with a login and/or its own CA: {@code accessJson} is
     * {@code {"username": ..., "password_file": ..., "ca_file": ...}} ({@link RegistryAccess}).
     */
    public ConfluentAvroDecode(String readerSchemaJson, String registryUrl, long waitMs, String knownWritersJson,
            String accessJson) {
        this.readerSchemaJson = readerSchemaJson;
        this.registryUrl = registryUrl;
        this.waitMs = waitMs;
        this.knownWritersJson = knownWritersJson;
        this.accessJson = accessJson;
    }

    // ---------------------------------------------------------------- planning

    @Override
    public TypeInference getTypeInference(DataTypeFactory typeFactory) {
        ArgumentTypeStrategy payload = InputTypeStrategies.explicit(DataTypes.BYTES());
        ArgumentTypeStrategy literal = InputTypeStrategies.and(
                InputTypeStrategies.LITERAL, InputTypeStrategies.explicit(DataTypes.STRING()));
        ArgumentTypeStrategy intLiteral = InputTypeStrategies.and(
                InputTypeStrategies.LITERAL, InputTypeStrategies.explicit(DataTypes.INT()));
        return TypeInference.newBuilder()
                .inputTypeStrategy(InputTypeStrategies.or(
                        InputTypeStrategies.sequence(
                                new String[] {"payload", "reader_schema", "registry_url"},
                                new ArgumentTypeStrategy[] {payload, literal, literal}),
                        InputTypeStrategies.sequence(
                                new String[] {"payload", "reader_schema", "registry_url", "wait_ms"},
                                new ArgumentTypeStrategy[] {payload, literal, literal, intLiteral}),
                        InputTypeStrategies.sequence(
                                new String[] {"payload", "reader_schema", "registry_url", "wait_ms", "known_writers"},
                                new ArgumentTypeStrategy[] {payload, literal, literal, intLiteral, literal}),
                        InputTypeStrategies.sequence(
                                new String[] {"payload", "reader_schema", "registry_url", "wait_ms", "known_writers",
                                        "registry_access"},
                                new ArgumentTypeStrategy[] {payload, literal, literal, intLiteral, literal, literal}),
                        InputTypeStrategies.sequence(
                                new String[] {"payload"}, new ArgumentTypeStrategy[] {payload})))
                .outputTypeStrategy(call -> Optional.of(
                        AvroRowType.outputType(AvroRowType.parseReader(literal(call, 1)))))
                .build();
    }

    /**
     * Declared non-deterministic, which is also true: the result for an unseen schema id
     * depends on the registry. It stops the planner from merging {@code SELECT d.* FROM
     * (SELECT decode_confluent(...) AS d ...)} into one projection that would call (and
     * decode) once per output column.
     */
    @Override
    public boolean isDeterministic() {
        return false;
    }

    /** Planner hook: returns the instance that runs, configured from the literal arguments. */
    @Override
    public UserDefinedFunction specialize(SpecializedContext context) {
        CallContext call = context.getCallContext();
        if (call.getArgumentDataTypes().size() == 1) {
            return this;
        }
        int arguments = call.getArgumentDataTypes().size();
        long wait = DEFAULT_WAIT_MS;
        if (arguments >= 4) {
            wait = call.getArgumentValue(3, Integer.class)
                    .orElseThrow(() -> call.newValidationError("wait_ms must be an INT literal"));
        }
        String known = arguments >= 5 ? stringArgument(call, 4, "known_writers") : null;
        String access = arguments == 6 ? stringArgument(call, 5, "registry_access") : null;
        return new ConfluentAvroDecode(literal(call, 1), literal(call, 2), wait, known, access);
    }

    private static String stringArgument(CallContext call, int pos, String name) {
        return call.getArgumentValue(pos, String.class)
                .orElseThrow(() -> call.newValidationError("%s must be a string literal", name));
    }

    /** Argument {@code pos} of a 3-argument call, or this instance's own setting. */
    private String literal(CallContext call, int pos) {
        if (call.getArgumentDataTypes().size() == 1) {
            if (readerSchemaJson == null) {
                throw call.newValidationError(
                        "Call %s(payload, '<reader schema json>', '<registry url>')", call.getName());
            }
            return pos == 1 ? readerSchemaJson : registryUrl;
        }
        String name = pos == 1 ? "reader_schema" : "registry_url";
        return call.getArgumentValue(pos, String.class)
                .orElseThrow(() -> call.newValidationError("%s must be a string literal", name));
    }

    // ---------------------------------------------------------------- runtime

    @Override
    public void open(FunctionContext context) {
        if (readerSchemaJson == null || registryUrl == null) {
            throw new IllegalStateException("ConfluentAvroDecode was not specialized with a schema");
        }
        reader = AvroRowType.parseReader(readerSchemaJson);
        List<Schema.Field> fields = reader.getFields();
        stringColumns = new boolean[fields.size()];
        for (int i = 0; i < stringColumns.length; i++) {
            stringColumns[i] = AvroRowType.isStringLike(fields.get(i));
        }
        registry = new SchemaRegistryCache(registryUrl, RegistryAccess.fromJson(accessJson));
        if (knownWritersJson != null) {
            registry.rememberAll(knownWritersJson);
        }
        resolutions = new HashMap<>();
    }

    public RowData eval(byte[] payload, String readerSchemaLiteral, String registryUrlLiteral) {
        return eval(payload);
    }

    public RowData eval(byte[] payload, String readerSchemaLiteral, String registryUrlLiteral, Integer waitLiteral) {
        return eval(payload);
    }

    public RowData eval(byte[] payload, String readerSchemaLiteral, String registryUrlLiteral, Integer waitLiteral,
            String knownWritersLiteral) {
        return eval(payload);
    }

    public RowData eval(byte[] payload, String readerSchemaLiteral, String registryUrlLiteral, Integer waitLiteral,
            String knownWritersLiteral, String accessLiteral) {
        return eval(payload);
    }

    public RowData eval(byte[] payload) {
        if (payload == null || payload.length == 0) {
            return failure("empty", "payload is empty");
        }
        if (payload[0] != 0) {
            return failure("bad_magic", String.format("first byte is 0x%02x, not 0x00", payload[0]));
        }
        if (payload.length < 5) {
            return failure("truncated", payload.length + " bytes, shorter than the 5-byte header");
        }
        int id = ((payload[1] & 0xff) << 24) | ((payload[2] & 0xff) << 16)
                | ((payload[3] & 0xff) << 8) | (payload[4] & 0xff);
        Resolution resolution = id == lastId ? lastResolution : resolutions.get(id);
        if (resolution == null) {
            try {
                resolution = resolve(id, writerSchema(id));
            } catch (SchemaRegistryCache.LookupException e) {
                return failure(e.code, e.getMessage()); // not kept here: the cache decides retries
            }
            resolutions.put(id, resolution);
        }
        lastId = id;
        lastResolution = resolution;
        if (resolution.datumReader == null) {
            return failure(resolution.code, resolution.message);
        }
        try {
            decoder = DecoderFactory.get().binaryDecoder(payload, 5, payload.length - 5, decoder);
            record = resolution.datumReader.read(record, decoder);
            if (!decoder.isEnd()) {
                return failure("trailing_bytes", "bytes left after the record (schema id " + id + ")");
            }
        } catch (java.io.EOFException e) {
            record = null; // may be half-filled
            return failure("truncated", "the body ends inside the record (schema id " + id + ")");
        } catch (AvroTypeException e) {
            record = null; // may be half-filled
            return resolution.partial
                    ? failure("wrong_schema", "schema id " + id + ": this record cannot be read as "
                            + reader.getFullName() + ": " + e.getMessage())
                    : failure("bad_body", "schema id " + id + ": " + describe(e));
        } catch (Exception | StackOverflowError e) {
            record = null; // may be half-filled
            return failure("bad_body", "schema id " + id + ": " + describe(e));
        }
        GenericRowData row = new GenericRowData(AvroRowType.TAG_COLUMNS + stringColumns.length);
        row.setField(0, true);
        for (int i = 0; i < stringColumns.length; i++) {
            Object value = record.get(i);
            if (stringColumns[i] && value != null) {
                value = toStringData(value);
                if (value == null) { // Avro does not check string bytes; Arrow and Python would fail the job
                    return failure("bad_body", "schema id " + id + ": field " + reader.getFields().get(i).name()
                            + " is not valid UTF-8");
                }
            }
            row.setField(AvroRowType.TAG_COLUMNS + i, value);
        }
        return row;
    }

    /**
     * The writer schema of {@code id}; while the registry does not answer, retried every second
     * for at most {@link #waitMs}, then the task fails (and replays from its checkpoint).
     */
    private Schema writerSchema(int id) throws SchemaRegistryCache.LookupException {
        long deadline = System.nanoTime() + waitMs * 1_000_000L;
        while (true) {
            try {
                return registry.get(id);
            } catch (SchemaRegistryCache.LookupException e) {
                if (SchemaRegistryCache.REFUSED.equals(e.code)) {
                    throw new IllegalStateException(e.getMessage() + "; waiting will not mend it: failing the task");
                }
                if (!"registry_unavailable".equals(e.code)) {
                    throw e;
                }
                if (System.nanoTime() - deadline >= 0) {
                    throw new IllegalStateException("schema registry still unavailable after " + waitMs
                            + " ms (" + e.getMessage() + "); failing the task so it replays from its checkpoint");
                }
                sleepBeforeRetry();
            }
        }
    }

    private static void sleepBeforeRetry() {
        try {
            Thread.sleep(SchemaRegistryCache.UNAVAILABLE_RETRY.toMillis());
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            throw new IllegalStateException("interrupted waiting for the schema registry", e);
        }
    }

    /**
     * Avro strings come as reused Utf8 buffers (copied here); enum symbols as objects. Null when the
     * bytes are not well-formed UTF-8.
     */
    private static StringData toStringData(Object value) {
        if (value instanceof Utf8 utf8) {
            if (!isWellFormedUtf8(utf8.getBytes(), utf8.getByteLength())) {
                return null;
            }
            return StringData.fromBytes(Arrays.copyOf(utf8.getBytes(), utf8.getByteLength()));
        }
        return StringData.fromString(value.toString());
    }

    /**
     * Well-formed UTF-8 as the Unicode standard defines it (its table 3-7), which is what Python's
     * decoder accepts: no overlong forms, no surrogates, nothing above U+10FFFF.
     */
    static boolean isWellFormedUtf8(byte[] bytes, int length) {
        int i = 0;
        while (i < length) {
            int lead = bytes[i] & 0xff;
            if (lead < 0x80) {
                i++;
                continue;
            }
            int more;
            int low = 0x80;
            int high = 0xBF;
            if (lead >= 0xC2 && lead <= 0xDF) {
                more = 1;
            } else if (lead >= 0xE0 && lead <= 0xEF) {
                more = 2;
                low = lead == 0xE0 ? 0xA0 : 0x80;
                high = lead == 0xED ? 0x9F : 0xBF;
            } else if (lead >= 0xF0 && lead <= 0xF4) {
                more = 3;
                low = lead == 0xF0 ? 0x90 : 0x80;
                high = lead == 0xF4 ? 0x8F : 0xBF;
            } else {
                return false;
            }
            if (i + more >= length) {
                return false;
            }
            int second = bytes[i + 1] & 0xff;
            if (second < low || second > high) {
                return false;
            }
            for (int k = 2; k <= more; k++) {
                int next = bytes[i + k] & 0xff;
                if (next < 0x80 || next > 0xBF) {
                    return false;
                }
            }
            i += more + 1;
        }
        return true;
    }

    private static String describe(Throwable e) {
        return e.getMessage() == null
                ? e.getClass().getSimpleName()
                : e.getClass().getSimpleName() + ": " + e.getMessage();
    }

    private RowData failure(String code, String message) {
        GenericRowData row = new GenericRowData(AvroRowType.TAG_COLUMNS + stringColumns.length);
        row.setField(0, false);
        row.setField(1, StringData.fromString(code));
        row.setField(2, StringData.fromString(message));
        return row;
    }

    /**
     * How a writer schema reads as the reader, once per id (kept forever). Another record is refused for
     * the whole id. Of the same record, resolution is per record, as the Avro specification (and the Python
     * decoder) does it: a writer Avro's compatibility check finds incompatible (a field that became
     * {@code ["null", "double"]}, an enum with a new symbol, or worse) is read all the same, and each record
     * that cannot be read (the one carrying the null or the new symbol; every record of a writer that lacks a
     * required field) fails alone as {@code wrong_schema}. A writer {@code ["null", record]} or
     * {@code [record, "null"]} (what Flink's own avro-confluent format registers for a nullable row) is
     * checked by its record branch and read through the union.
     */
    private Resolution resolve(int id, Schema writer) {
        Schema writerRecord = writer;
        if (writer.getType() == Schema.Type.UNION && writer.getTypes().size() == 2) {
            List<Schema> branches = writer.getTypes();
            if (branches.get(0).getType() == Schema.Type.NULL) {
                writerRecord = branches.get(1);
            } else if (branches.get(1).getType() == Schema.Type.NULL) {
                writerRecord = branches.get(0);
            }
        }
        boolean sameRecord = writerRecord.getType() == Schema.Type.RECORD
                && (writerRecord.getFullName().equals(reader.getFullName())
                        || reader.getAliases().contains(writerRecord.getFullName()));
        if (!sameRecord) {
            return new Resolution(null, "wrong_schema", "schema id " + id + " is "
                    + writerRecord.getFullName() + ", the reader expects " + reader.getFullName(), false);
        }
        boolean compatible = SchemaCompatibility.checkReaderWriterCompatibility(reader, writerRecord).getResult()
                .getCompatibility() == SchemaCompatibility.SchemaCompatibilityType.COMPATIBLE;
        return new Resolution(new PlainDatumReader(writer, reader), null, null, !compatible);
    }

    /**
     * A GenericDatumReader without the per-value lookups that profiles showed on top: logical
     * type conversions (all map to their physical type here, e.g. timestamp-millis stays a
     * long) and the Java class of strings (always a reused Utf8).
     */
    private static final class PlainDatumReader extends GenericDatumReader<GenericRecord> {
        PlainDatumReader(Schema writer, Schema reader) {
            super(writer, reader);
        }

        @Override
        protected Object read(Object old, Schema expected, ResolvingDecoder in) throws IOException {
            return readWithoutConversion(old, expected, in);
        }

        @Override
        protected Object readString(Object old, Schema expected, Decoder in) throws IOException {
            return in.readString(old instanceof Utf8 utf8 ? utf8 : null);
        }
    }

    /** How one writer schema reads: a datum reader (partial: some of its records fail), or why not. */
    private record Resolution(
            GenericDatumReader<GenericRecord> datumReader, String code, String message, boolean partial) {}
}
