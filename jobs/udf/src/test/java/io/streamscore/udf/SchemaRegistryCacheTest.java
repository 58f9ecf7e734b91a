package io.streamscore.udf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.util.Base64;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Executors;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpHandler;
import com.sun.net.httpserver.HttpServer;
import com.sun.net.httpserver.HttpsConfigurator;
import com.sun.net.httpserver.HttpsServer;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The decoder's registry client against small local HTTP(S) servers: what counts as a missing id and
 * what as an unavailable registry, the bound on the whole answer, the cap on remembered failures,
 * and a registry behind basic auth and a private CA.
 */
class SchemaRegistryCacheTest {

    private static final String SCHEMA = "{\"schema\": \"{\\\"type\\\": \\\"record\\\", \\\"name\\\": \\\"R\\\", "
            + "\\\"fields\\\": [{\\\"name\\\": \\\"x\\\", \\\"type\\\": \\\"long\\\"}]}\"}";

    @TempDir
    Path dir;

    private HttpServer server;

    @AfterEach
    void stop() {
        if (server != null) {
            server.stop(0);
        }
    }

    private String serve(HttpHandler handler) throws IOException {
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        server.createContext("/", handler);
        server.setExecutor(Executors.newCachedThreadPool());
        server.start();
        return "http://127.0.0.1:" + server.getAddress().getPort() + "/apis/ccompat/v7";
    }

    private static void answer(HttpExchange exchange, int status, String body) throws IOException {
        byte[] bytes = body.getBytes(StandardCharsets.UTF_8);
        exchange.sendResponseHeaders(status, bytes.length);
        try (OutputStream out = exchange.getResponseBody()) {
            out.write(bytes);
        }
    }

    private static SchemaRegistryCache.LookupException failure(SchemaRegistryCache cache, int id) {
        return assertThrows(SchemaRegistryCache.LookupException.class, () -> cache.get(id));
    }

    @Test
    void aRegisteredIdIsFetchedOnceAndCached() throws Exception {
        AtomicInteger calls = new AtomicInteger();
        SchemaRegistryCache cache = new SchemaRegistryCache(serve(exchange -> {
            calls.incrementAndGet();
            answer(exchange, 200, SCHEMA);
        }));
        assertEquals("R", cache.get(7).getName());
        assertEquals("R", cache.get(7).getName());
        assertEquals(1, calls.get());
    }

    @Test
    void theRegistrysNotFoundIsAnUnknownIdAnyOther404OrANonJsonAnswerIsUnavailable() throws Exception {
        SchemaRegistryCache cache = new SchemaRegistryCache(serve(exchange -> {
            String path = exchange.getRequestURI().getPath();
            if (path.endsWith("/1")) {
                answer(exchange, 404, "{\"error_code\": 40403, \"message\": \"Schema not found\"}");
            } else if (path.endsWith("/2")) {
                answer(exchange, 404, "<html>no such page</html>");
            } else {
                answer(exchange, 200, "<html>a proxy's login page</html>");
            }
        }));
        assertEquals("unknown_schema_id", failure(cache, 1).code);
        SchemaRegistryCache.LookupException wrongUrl = failure(cache, 2);
        assertEquals("registry_unavailable", wrongUrl.code);
        assertTrue(wrongUrl.getMessage().contains("not a registry's answer"), wrongUrl.getMessage());
        assertEquals("registry_unavailable", failure(cache, 3).code);
    }

    @Test
    void anAnswerWhoseBodyStallsIsUnavailableWithinTheTimeout() throws Exception {
        CountDownLatch done = new CountDownLatch(1);
        SchemaRegistryCache cache = new SchemaRegistryCache(serve(exchange -> {
            exchange.sendResponseHeaders(200, 1000);
            exchange.getResponseBody().write("{\"sch".getBytes(StandardCharsets.UTF_8));
            exchange.getResponseBody().flush();
            try {
                done.await(30, TimeUnit.SECONDS);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
            exchange.close();
        }));
        long started = System.nanoTime();
        SchemaRegistryCache.LookupException stalled = failure(cache, 5);
        long tookMs = (System.nanoTime() - started) / 1_000_000;
        assertEquals("registry_unavailable", stalled.code);
        done.countDown();
        assertTrue(tookMs >= 4_500 && tookMs < 15_000, "gave up after " + tookMs + " ms");
    }

    @Test
    void failedIdsAreRememberedAtMostMaxFailuresAndNotAskedAgainMeanwhile() throws Exception {
        int port;
        try (ServerSocket free = new ServerSocket(0, 1, InetAddress.getByName("127.0.0.1"))) {
            port = free.getLocalPort(); // closed again: every call is refused at once
        }
        SchemaRegistryCache cache = new SchemaRegistryCache("http://127.0.0.1:" + port);
        int ids = SchemaRegistryCache.MAX_FAILURES + 50;
        for (int id = 0; id < ids; id++) {
            assertEquals("registry_unavailable", failure(cache, id).code);
        }
        assertEquals(SchemaRegistryCache.MAX_FAILURES, cache.rememberedFailures());
        server = HttpServer.create(new InetSocketAddress("127.0.0.1", port), 0); // the registry is back
        server.createContext("/", exchange -> answer(exchange, 200, SCHEMA));
        server.start();
        assertEquals("registry_unavailable", failure(cache, ids - 1).code); // remembered: not asked before its retry
        assertEquals("R", cache.get(0).getName()); // the eldest was dropped: asked again
    }

    @Test
    void aRegistryBehindBasicAuthGetsTheLoginFromThePasswordFile() throws Exception {
        String expected = "Basic " + Base64.getEncoder().encodeToString("alice:s3cret".getBytes(StandardCharsets.UTF_8));
        String url = serve(exchange -> {
            String login = exchange.getRequestHeaders().getFirst("Authorization");
            answer(exchange, expected.equals(login) ? 200 : 401, expected.equals(login) ? SCHEMA : "{}");
        });
        Path password = Files.writeString(dir.resolve("registry.pw"), "s3cret\n");
        Path wrong = Files.writeString(dir.resolve("wrong.pw"), "guess\n");
        assertEquals("R", new SchemaRegistryCache(url, access(password, null)).get(1).getName());
        SchemaRegistryCache.LookupException none = failure(new SchemaRegistryCache(url), 1);
        assertEquals(SchemaRegistryCache.REFUSED, none.code); // the decoder fails the task at once: no waiting
        assertTrue(none.getMessage().contains("refused a request without a login (HTTP 401)"), none.getMessage());
        SchemaRegistryCache.LookupException refused = failure(new SchemaRegistryCache(url, access(wrong, null)), 1);
        assertEquals(SchemaRegistryCache.REFUSED, refused.code);
        assertTrue(refused.getMessage().contains("refused the login (HTTP 401)"), refused.getMessage());
    }

    @Test
    void aRegistryWithAPrivateCaIsTrustedThroughTheCaFileOnly() throws Exception {
        Path keyStore = dir.resolve("server.p12");
        Path caFile = dir.resolve("ca.pem");
        keytool("-genkeypair", "-alias", "registry", "-keyalg", "EC", "-groupname", "secp256r1", "-validity", "2",
                "-dname", "CN=localhost", "-ext", "SAN=ip:127.0.0.1,dns:localhost",
                "-keystore", keyStore.toString(), "-storetype", "PKCS12", "-storepass", "changeit");
        keytool("-exportcert", "-rfc", "-alias", "registry", "-file", caFile.toString(),
                "-keystore", keyStore.toString(), "-storetype", "PKCS12", "-storepass", "changeit");
        HttpsServer https = HttpsServer.create(new InetSocketAddress("127.0.0.1", 0), 0);
        https.setHttpsConfigurator(new HttpsConfigurator(serverContext(keyStore)));
        https.createContext("/", exchange -> answer(exchange, 200, SCHEMA));
        https.start();
        server = https;
        String url = "https://127.0.0.1:" + https.getAddress().getPort();
        assertEquals("R", new SchemaRegistryCache(url, access(null, caFile)).get(1).getName());
        // a PEM file that also holds a key (as some bundles do): its certificate is used, the key skipped
        Path bundle = Files.writeString(dir.resolve("bundle.pem"), "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n"
                + "-----END PRIVATE KEY-----\n" + Files.readString(caFile));
        assertEquals("R", new SchemaRegistryCache(url, access(null, bundle)).get(1).getName());
        SchemaRegistryCache.LookupException untrusted = failure(new SchemaRegistryCache(url), 1);
        assertEquals(SchemaRegistryCache.REFUSED, untrusted.code); // a certificate problem: waiting will not mend it
        assertTrue(untrusted.getMessage().contains("TLS failed"), untrusted.getMessage());
    }

    @Test
    void accessLiteralsThatCannotWorkFailWithOneClearMessage() {
        String half = "{\"username\": \"alice\"}";
        assertTrue(assertThrows(IllegalArgumentException.class, () -> RegistryAccess.fromJson(half))
                .getMessage().contains("both username and password_file"));
        assertTrue(assertThrows(IllegalArgumentException.class, () -> RegistryAccess.fromJson("{\"password\": \"x\"}"))
                .getMessage().contains("unknown key password"));
        String missing = "{\"username\": \"alice\", \"password_file\": \"" + dir.resolve("none.pw") + "\"}";
        assertTrue(assertThrows(IllegalStateException.class, () -> RegistryAccess.fromJson(missing))
                .getMessage().endsWith("none.pw is not on this TaskManager"));
        String noCertificate = "{\"ca_file\": \"" + dir.resolve("empty.pem") + "\"}";
        assertThrows(IllegalStateException.class, () -> {
            Files.writeString(dir.resolve("empty.pem"), "not a certificate\n");
            RegistryAccess.fromJson(noCertificate);
        });
        assertEquals(RegistryAccess.NONE, RegistryAccess.fromJson(""));
    }

    private static RegistryAccess access(Path passwordFile, Path caFile) {
        StringBuilder json = new StringBuilder("{");
        if (passwordFile != null) {
            json.append("\"username\": \"alice\", \"password_file\": \"").append(passwordFile).append('"');
        }
        if (caFile != null) {
            json.append(passwordFile != null ? ", " : "").append("\"ca_file\": \"").append(caFile).append('"');
        }
        return RegistryAccess.fromJson(json.append('}').toString());
    }

    private static void keytool(String... args) throws Exception {
        String[] command = new String[args.length + 1];
        command[0] = Path.of(System.getProperty("java.home"), "bin", "keytool").toString();
        System.arraycopy(args, 0, command, 1, args.length);
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertEquals(0, process.waitFor(), output);
    }

    private static SSLContext serverContext(Path keyStore) throws Exception {
        KeyStore keys = KeyStore.getInstance("PKCS12");
        try (InputStream in = Files.newInputStream(keyStore)) {
            keys.load(in, "changeit".toCharArray());
        }
        KeyManagerFactory managers = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        managers.init(keys, "changeit".toCharArray());
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(managers.getKeyManagers(), null, null);
        return context;
    }
}
