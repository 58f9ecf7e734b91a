package io.streamscore.udf;

import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.security.GeneralSecurityException;
import java.security.KeyStore;
import java.security.cert.CertificateFactory;
import java.util.Base64;
import java.util.Iterator;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import javax.net.ssl.SSLContext;
import javax.net.ssl.TrustManagerFactory;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;

/**
 * How the decoder reaches a registry that needs a login or its own CA, from the job's literal
 * {@code {"username": "...", "password_file": "...", "ca_file": "..."}} (each key optional). Only
 * names and file paths travel in the job's plan; the password and the CA are read from files on the
 * TaskManager when the function opens, as the Python decoder reads them.
 */
public final class RegistryAccess {

    /** Plain HTTP, or HTTPS trusted by the JVM's own CAs, without a login. */
    public static final RegistryAccess NONE = new RegistryAccess(null, null);

    private static final java.util.Set<String> KEYS = java.util.Set.of("username", "password_file", "ca_file");

    /** The {@code Authorization} header's value, or null. */
    final String authorization;
    /** Trusts the registry's CA only, or null for the JVM's default trust. */
    final SSLContext sslContext;

    private RegistryAccess(String authorization, SSLContext sslContext) {
        this.authorization = authorization;
        this.sslContext = sslContext;
    }

    /** Parsed from the job's literal (null or empty: {@link #NONE}); files are read now. */
    public static RegistryAccess fromJson(String accessJson) {
        if (accessJson == null || accessJson.isBlank()) {
            return NONE;
        }
        JsonNode access = parse(accessJson);
        String username = text(access, "username");
        String passwordFile = text(access, "password_file");
        if ((username == null) != (passwordFile == null)) {
            throw new IllegalArgumentException("registry access needs both username and password_file, or neither");
        }
        String caFile = text(access, "ca_file");
        return new RegistryAccess(username == null ? null : basic(username, Path.of(passwordFile)),
                caFile == null ? null : trusting(Path.of(caFile)));
    }

    private static JsonNode parse(String accessJson) {
        try {
            JsonNode access = new ObjectMapper().readTree(accessJson);
            if (access == null || !access.isObject()) {
                throw new IllegalArgumentException("registry access is not a JSON object");
            }
            for (Iterator<Map.Entry<String, JsonNode>> it = access.fields(); it.hasNext(); ) {
                String key = it.next().getKey();
                if (!KEYS.contains(key)) {
                    throw new IllegalArgumentException("registry access has an unknown key " + key + " (known: " + KEYS + ")");
                }
            }
            return access;
        } catch (IOException e) {
            throw new IllegalArgumentException("registry access is not JSON: " + e.getMessage(), e);
        }
    }

    private static String text(JsonNode access, String key) {
        JsonNode value = access.get(key);
        if (value == null || value.isNull()) {
            return null;
        }
        if (!value.isTextual() || value.asText().isEmpty()) {
            throw new IllegalArgumentException("registry access: " + key + " must be a non-empty string");
        }
        return value.asText();
    }

    /** Line breaks as Python's {@code str.splitlines} knows them (the Python decoder reads the same file so). */
    private static final Pattern LINE_BREAK = Pattern.compile("[\\n\\r\\u000B\\u000C\\u001C\\u001D\\u001E\\u0085\\u2028\\u2029]");
    private static final Pattern CERTIFICATE = Pattern.compile(
            "-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----");

    /** {@code Basic base64(user:password)}, the password being the file's first line. */
    private static String basic(String username, Path passwordFile) {
        String password = LINE_BREAK.split(read(passwordFile, "password file"), 2)[0];
        if (password.isEmpty()) {
            throw new IllegalStateException("the schema registry's password file " + passwordFile + " is empty");
        }
        byte[] pair = (username + ":" + password).getBytes(StandardCharsets.UTF_8);
        return "Basic " + Base64.getEncoder().encodeToString(pair);
    }

    /**
     * TLS that trusts the certificates of a PEM file (the registry's CA) and nothing else; other PEM
     * blocks in the file (a key) are skipped, as Python's {@code ssl} does.
     */
    private static SSLContext trusting(Path caFile) {
        Matcher blocks = CERTIFICATE.matcher(read(caFile, "CA file"));
        try {
            KeyStore trusted = KeyStore.getInstance(KeyStore.getDefaultType());
            trusted.load(null, null);
            CertificateFactory x509 = CertificateFactory.getInstance("X.509");
            int index = 0;
            while (blocks.find()) {
                byte[] pem = blocks.group().getBytes(StandardCharsets.US_ASCII);
                trusted.setCertificateEntry("registry-ca-" + index++, x509.generateCertificate(new ByteArrayInputStream(pem)));
            }
            if (index == 0) {
                throw new IllegalStateException("the schema registry's CA file " + caFile + " holds no PEM certificate");
            }
            TrustManagerFactory trust = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
            trust.init(trusted);
            SSLContext context = SSLContext.getInstance("TLS");
            context.init(null, trust.getTrustManagers(), null);
            return context;
        } catch (IOException | GeneralSecurityException e) {
            throw new IllegalStateException("cannot use the schema registry's CA file " + caFile
                    + " on this TaskManager: " + e.getClass().getSimpleName() + ": " + e.getMessage(), e);
        }
    }

    private static String read(Path file, String what) {
        try {
            return Files.readString(file, StandardCharsets.UTF_8);
        } catch (NoSuchFileException e) {
            throw new IllegalStateException("the schema registry's " + what + " " + file + " is not on this TaskManager", e);
        } catch (IOException e) {
            throw new IllegalStateException("cannot read the schema registry's " + what + " " + file
                    + " on this TaskManager: " + e.getClass().getSimpleName() + ": " + e.getMessage(), e);
        }
    }
}
