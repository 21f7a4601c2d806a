package dev.phonepipeline.demo.core;

/**
 * A well-formed bundle whose model this app cannot show: it shows picture classifiers (one picture in, one list of
 * class scores out). The message is the one line the app puts on screen, naming why.
 */
public final class UnsupportedModelException extends BundleFormatException {
    private static final long serialVersionUID = 1L;

    public UnsupportedModelException(String message) {
        super(message);
    }
}
