package io.streamscore.udf;

import java.io.IOException;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

import javax.net.ssl.SSLException;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import org.apache.avro.Schema;

/**
 * Writer schemas fetched by id from a Confluent-compatible registry
 * ({@code GET {url}/schemas/ids/{id}} answering {@code {"schema": "..."}}).
 *
 * <p>A fetched schema is cached forever (ids are immutable), so a registry outage only
 * affects ids not seen before. Failures are remembered briefly (at most {@link #MAX_FAILURES} of
 * them, the oldest dropped first) so that a stream of bad records does not turn into a stream of
 * HTTP calls: an unreachable registry, one that does not answer within {@code TIMEOUT} (the body
 * included), or any answer that is not the registry's own for {@link #UNAVAILABLE_RETRY}; the
 * registry's "not found" (a 404 with its error code 404xx) or an unparsable schema for
 * {@link #NOT_FOUND_RETRY}. A 404 without the registry's code, or a 200 that is not its JSON, is a
 * wrong URL, not a missing schema: it counts as unavailable, so the records wait and the task
 * fails loudly instead of dead-lettering every record. A registry that refuses this client (HTTP
 * 401/403, or TLS that fails: a certificate it cannot trust) is {@link #REFUSED}: the decoder fails
 * the task at once, as the Python decoder does ({@code RegistryRefused}).
 *
 * <p>Not thread-safe: one instance per function instance (i.e. per parallel subtask).
 */
public final class SchemaRegistryCache {

    /**
     * The code of a registry that answers but refuses this client (HTTP 401/403, a TLS failure):
     * waiting will not mend it, so the decoder fails the task at once instead of waiting.
     */
    static final String REFUSED = "registry_refused";
    static final Duration NOT_FOUND_RETRY = Duration.ofSeconds(30);
    static final Duration UNAVAILABLE_RETRY = Duration.ofSeconds(1);
    private static final Duration TIMEOUT = Duration.ofSeconds(5);

    /** A lookup failure with its decode reason code. */
    public static final class LookupException extends Exception {
        public final String code;

        LookupException(String code, String message) {
            super(message, null, false, false);
            this.code = code;
        }
    }

    private record Failure(LookupException error, long retryAtNanos) {}

    private final String baseUrl;
    private final HttpClient http;
    private final String authorization;
    private final ObjectMapper json = new ObjectMapper();
    private final Map<Integer, Schema> schemas = new HashMap<>();
    static final int MAX_FAILURES = 4096;
    private final Map<Integer, Failure> failures = new LinkedHashMap<>(16, 0.75f, false) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<Integer, Failure> eldest) {
            return size() > MAX_FAILURES;
        }
    };

    public SchemaRegistryCache(String baseUrl) {
        this(baseUrl, RegistryAccess.NONE);
    }

    /** A registry reached with a login and/or its own CA ({@link RegistryAccess}). */
    public SchemaRegistryCache(String baseUrl, RegistryAccess access) {
        this.baseUrl = baseUrl.endsWith("/") ? baseUrl.substring(0, baseUrl.length() - 1) : baseUrl;
        HttpClient.Builder client = HttpClient.newBuilder().connectTimeout(TIMEOUT);
        if (access.sslContext != null) {
            client.sslContext(access.sslContext);
        }
        this.http = client.build();
        this.authorization = access.authorization;
    }

    /** How many failed ids are remembered (for tests: at most {@link #MAX_FAILURES}). */
    int rememberedFailures() {
        return failures.size();
    }

    /**
     * Writer schemas known without asking the registry, as a JSON object from id to schema
     * (e.g. {@code {"7": {"type": "record", ...}}}); a malformed one fails at once.
     */
    public void rememberAll(String knownWritersJson) {
        try {
            JsonNode known = json.readTree(knownWritersJson);
            if (known == null || !known.isObject()) {
                throw new IllegalArgumentException("not a JSON object");
            }
            for (Map.Entry<String, JsonNode> entry : (Iterable<Map.Entry<String, JsonNode>>) known::fields) {
                schemas.put(Integer.parseInt(entry.getKey()), new Schema.Parser().parse(entry.getValue().toString()));
            }
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException("known writer schemas are not {\"<id>\": <Avro schema>, ...}: "
                    + e.getMessage(), e);
        }
    }

    /** The writer schema registered under {@code id}. */
    public Schema get(int id) throws LookupException {
        Schema schema = schemas.get(id);
        if (schema != null) {
            return schema;
        }
        Failure failure = failures.get(id);
        if (failure != null && System.nanoTime() - failure.retryAtNanos < 0) {
            throw failure.error;
        }
        try {
            schema = fetch(id);
        } catch (LookupException e) {
            boolean retrySoon = "registry_unavailable".equals(e.code) || REFUSED.equals(e.code);
            Duration retry = retrySoon ? UNAVAILABLE_RETRY : NOT_FOUND_RETRY;
            failures.put(id, new Failure(e, System.nanoTime() + retry.toNanos()));
            throw e;
        }
        failures.remove(id);
        schemas.put(id, schema);
        return schema;
    }

    private Schema fetch(int id) throws LookupException {
        HttpRequest.Builder request = HttpRequest.newBuilder(URI.create(baseUrl + "/schemas/ids/" + id))
                .timeout(TIMEOUT)
                .header("Accept", "application/vnd.schemaregistry.v1+json, application/json")
                .GET();
        if (authorization != null) {
            request.header("Authorization", authorization);
        }
        HttpResponse<String> response = send(request.build(), id);
        if (response.statusCode() == 401 || response.statusCode() == 403) {
            throw new LookupException(REFUSED, "schema registry at " + baseUrl + " refused "
                    + (authorization == null ? "a request without a login" : "the login") + " (HTTP "
                    + response.statusCode() + ") for id " + id);
        }
        JsonNode answer = jsonOrNull(response.body());
        if (response.statusCode() == 404 && answer != null && answer.path("error_code").asInt() / 100 == 404) {
            throw new LookupException("unknown_schema_id", "schema id " + id + " is not registered");
        }
        JsonNode text = answer == null ? null : answer.get("schema");
        if (response.statusCode() != 200 || text == null || !text.isTextual()) {
            throw new LookupException("registry_unavailable", "schema registry at " + baseUrl + " answered HTTP "
                    + response.statusCode() + " for id " + id + (response.statusCode() == 404 || text == null
                            ? ", not a registry's answer (is the URL the registry's API base?)" : ""));
        }
        try {
            return new Schema.Parser().parse(text.asText());
        } catch (RuntimeException e) {
            throw new LookupException("wrong_schema",
                    "writer schema " + id + " is not a usable Avro schema: " + e.getMessage());
        }
    }

    /** The answer, bounded by {@code TIMEOUT} as a whole (the body too: a blocking send's timeout stops at the headers). */
    private HttpResponse<String> send(HttpRequest request, int id) throws LookupException {
        CompletableFuture<HttpResponse<String>> pending = http.sendAsync(request, HttpResponse.BodyHandlers.ofString());
        try {
            return pending.get(TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
        } catch (TimeoutException e) {
            pending.cancel(true);
            throw new LookupException("registry_unavailable", "schema registry did not answer for id " + id
                    + " within " + TIMEOUT.toSeconds() + " s");
        } catch (ExecutionException e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            if (cause instanceof SSLException) { // a certificate problem: waiting will not mend it
                throw new LookupException(REFUSED, "schema registry at " + baseUrl + ": TLS failed for id " + id
                        + ": " + cause.getClass().getSimpleName() + ": " + cause.getMessage());
            }
            throw new LookupException("registry_unavailable",
                    "schema registry unreachable for id " + id + ": " + cause.getClass().getSimpleName()
                            + (cause.getMessage() == null ? "" : ": " + cause.getMessage()));
        } catch (InterruptedException e) {
            pending.cancel(true);
            Thread.currentThread().interrupt();
            throw new LookupException("registry_unavailable", "interrupted fetching id " + id);
        }
    }

    private JsonNode jsonOrNull(String body) {
        try {
            JsonNode node = body == null ? null : json.readTree(body);
            return node != null && node.isObject() ? node : null;
        } catch (IOException e) {
            return null;
        }
    }
}
