package dev.phonepipeline.demo.app;

import android.app.Activity;
import android.content.ActivityNotFoundException;
import android.content.Intent;
import android.graphics.Bitmap;
import android.graphics.BitmapFactory;
import android.net.Uri;
import android.os.Bundle;
import android.view.View;
import android.widget.AdapterView;
import android.widget.ArrayAdapter;
import android.widget.CompoundButton;
import android.widget.ImageView;
import android.widget.Spinner;
import android.widget.Switch;
import android.widget.TextView;
import dev.phonepipeline.demo.R;
import dev.phonepipeline.demo.core.Artifact;
import dev.phonepipeline.demo.core.BundleMetadata;
import dev.phonepipeline.demo.core.BundleReader;
import dev.phonepipeline.demo.core.ClassificationResult;
import dev.phonepipeline.demo.core.Classifier;
import dev.phonepipeline.demo.core.ResultFormatter;
import dev.phonepipeline.demo.core.RuntimeFactory;
import dev.phonepipeline.demo.core.Runtimes;
import dev.phonepipeline.demo.core.Sample;
import java.io.File;
import java.io.FileOutputStream;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The screen: the bundle's artifacts, a TFLite/ExecuTorch switch, and pictures from the bundle, the gallery or the
 * camera classified with the chosen artifact. Everything but the widgets lives in the plain-Java core package.
 */
public final class MainActivity extends Activity {
    private static final int PICK_IMAGE = 1;
    private static final int TAKE_PHOTO = 2;
    private static final int TOP_K = 3;

    /** One worker thread: runtimes are not thread-safe and inference must stay off the UI thread. */
    private final ExecutorService worker = Executors.newSingleThreadExecutor();
    // written by the worker, read by the UI thread
    private final Map<String, Classifier> classifiers = new ConcurrentHashMap<String, Classifier>();
    private BundleReader reader;
    private BundleMetadata bundle;
    private List<Artifact> shown = new ArrayList<Artifact>();
    private TextView results;
    private TextView latency;
    private TextView runtimeStatus;
    private ImageView preview;
    private Spinner artifactSpinner;
    private Switch runtimeSwitch;

    @Override
    protected void onCreate(Bundle savedInstanceState) {
        super.onCreate(savedInstanceState);
        setContentView(R.layout.activity_main);
        results = (TextView) findViewById(R.id.results);
        latency = (TextView) findViewById(R.id.latency);
        runtimeStatus = (TextView) findViewById(R.id.runtime_status);
        preview = (ImageView) findViewById(R.id.preview);
        artifactSpinner = (Spinner) findViewById(R.id.artifact_spinner);
        runtimeSwitch = (Switch) findViewById(R.id.runtime_switch);
        runtimeStatus.setText(Runtimes.status(Artifact.Format.TFLITE) + "\n" + Runtimes.status(Artifact.Format.PTE));

        reader = new BundleReader(new AssetBundleFiles(getAssets()));
        TextView info = (TextView) findViewById(R.id.bundle_info);
        try {
            bundle = reader.metadata();
            info.setText(bundle.modelName + " " + bundle.modelVersion + ": " + bundle.artifacts.size()
                    + " artifacts, " + bundle.samples.size() + " samples");
        } catch (Exception ex) {
            bundle = null;
            info.setText(ex instanceof java.io.FileNotFoundException ? getString(R.string.no_bundle)
                    : String.valueOf(ex.getMessage()));
        }
        runtimeSwitch.setOnCheckedChangeListener(new CompoundButton.OnCheckedChangeListener() {
            @Override
            public void onCheckedChanged(CompoundButton button, boolean executorch) {
                showArtifacts();
            }
        });
        artifactSpinner.setOnItemSelectedListener(new AdapterView.OnItemSelectedListener() {
            @Override
            public void onItemSelected(AdapterView<?> parent, View view, int position, long id) {
                showLatency();
            }

            @Override
            public void onNothingSelected(AdapterView<?> parent) {
            }
        });
        findViewById(R.id.classify_samples).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                classifySamples();
            }
        });
        findViewById(R.id.pick_gallery).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                Intent pick = new Intent(Intent.ACTION_GET_CONTENT).setType("image/*");
                startForResult(pick, PICK_IMAGE);
            }
        });
        findViewById(R.id.take_photo).setOnClickListener(new View.OnClickListener() {
            @Override
            public void onClick(View v) {
                startForResult(new Intent("android.media.action.IMAGE_CAPTURE"), TAKE_PHOTO);
            }
        });
        showArtifacts();
    }

    @Override
    protected void onDestroy() {
        worker.shutdownNow();
        for (Classifier c : classifiers.values()) {
            try {
                c.close();
            } catch (Exception ignored) {
                // closing a runtime at exit has nobody left to tell
            }
        }
        super.onDestroy();
    }

    private void startForResult(Intent intent, int request) {
        try {
            startActivityForResult(intent, request);
        } catch (ActivityNotFoundException ex) {
            results.setText("No app on this phone handles " + intent.getAction());
        }
    }

    @Override
    protected void onActivityResult(int request, int result, Intent data) {
        super.onActivityResult(request, result, data);
        if (result != RESULT_OK || data == null) {
            return;
        }
        Bitmap bitmap = null;
        try {
            if (request == PICK_IMAGE && data.getData() != null) {
                Uri uri = data.getData();
                InputStream in = getContentResolver().openInputStream(uri);
                try {
                    bitmap = BitmapFactory.decodeStream(in);
                } finally {
                    if (in != null) {
                        in.close();
                    }
                }
            } else if (request == TAKE_PHOTO && data.getExtras() != null) {
                bitmap = (Bitmap) data.getExtras().get("data"); // the camera app's thumbnail
            }
        } catch (Exception ex) {
            results.setText("Could not read the picture: " + ex.getMessage());
            return;
        }
        if (bitmap != null) {
            classifyOne(bitmap, null);
        }
    }

    private void showArtifacts() {
        shown = new ArrayList<Artifact>();
        List<String> names = new ArrayList<String>();
        if (bundle != null) {
            Artifact.Format format = runtimeSwitch.isChecked() ? Artifact.Format.PTE : Artifact.Format.TFLITE;
            shown = bundle.artifactsFor(format);
            for (Artifact a : shown) {
                names.add(a.name + " (" + a.precision + ", " + a.layout + ")");
            }
        }
        ArrayAdapter<String> adapter = new ArrayAdapter<String>(this, android.R.layout.simple_spinner_item, names);
        adapter.setDropDownViewResource(android.R.layout.simple_spinner_dropdown_item);
        artifactSpinner.setAdapter(adapter);
        showLatency();
    }

    private Artifact selected() {
        int i = artifactSpinner.getSelectedItemPosition();
        return i >= 0 && i < shown.size() ? shown.get(i) : null;
    }

    private void showLatency() {
        StringBuilder s = new StringBuilder();
        if (bundle != null) {
            for (Artifact a : bundle.artifacts) {
                Classifier c = classifiers.get(a.name);
                if (c != null) {
                    s.append(ResultFormatter.latency(a, c.latency)).append('\n');
                }
            }
        }
        latency.setText(s.toString());
    }

    /** The classifier for the selected artifact, loading it on first use; null (with the reason shown) if it can't. */
    private Classifier classifier(final Artifact artifact) throws Exception {
        Classifier c = classifiers.get(artifact.name);
        if (c != null) {
            return c;
        }
        RuntimeFactory factory = Runtimes.find(artifact.format);
        if (factory == null) {
            post(artifact.runtimeName() + ": " + Runtimes.NOT_IN_BUILD);
            return null;
        }
        // ExecuTorch loads from a path, so both runtimes read a verified copy in the app's files.
        File model = new File(getFilesDir(), artifact.sha256 + "-" + new File(artifact.file).getName());
        if (!model.exists()) {
            File partial = new File(model.getPath() + ".partial");
            FileOutputStream out = new FileOutputStream(partial);
            try {
                reader.copyVerified(artifact, out);
            } finally {
                out.close();
            }
            if (!partial.renameTo(model)) {
                throw new java.io.IOException("could not write " + model);
            }
        }
        c = new Classifier(bundle, artifact, factory.open(model, artifact));
        classifiers.put(artifact.name, c);
        return c;
    }

    private void classifySamples() {
        final Artifact artifact = selected();
        if (bundle == null || artifact == null) {
            return;
        }
        results.setText("Classifying " + bundle.samples.size() + " samples with " + artifact.name + "...");
        worker.execute(new Runnable() {
            @Override
            public void run() {
                try {
                    Classifier c = classifier(artifact);
                    if (c == null) {
                        return;
                    }
                    StringBuilder text = new StringBuilder();
                    int right = 0;
                    int known = 0;
                    Bitmap last = null;
                    for (Sample sample : bundle.samples) {
                        InputStream in = new AssetBundleFiles(getAssets()).open(sample.file);
                        Bitmap bitmap;
                        try {
                            bitmap = BitmapFactory.decodeStream(in);
                        } finally {
                            in.close();
                        }
                        ClassificationResult r = c.classify(BitmapPixels.of(bitmap), TOP_K);
                        String truth = sample.label >= 0 ? bundle.labels.get(sample.label) : null;
                        if (sample.label >= 0) {
                            known++;
                            right += r.top.get(0).index == sample.label ? 1 : 0;
                        }
                        text.append(sample.file).append('\n').append(ResultFormatter.topClasses(r.top, truth));
                        last = bitmap;
                    }
                    post(ResultFormatter.accuracy(right, known) + "\n\n" + text, last);
                } catch (Exception ex) {
                    post(artifact.name + ": " + ex.getMessage());
                }
            }
        });
    }

    private void classifyOne(final Bitmap bitmap, final String truth) {
        final Artifact artifact = selected();
        preview.setImageBitmap(bitmap);
        if (bundle == null || artifact == null) {
            return;
        }
        worker.execute(new Runnable() {
            @Override
            public void run() {
                try {
                    Classifier c = classifier(artifact);
                    if (c != null) {
                        ClassificationResult r = c.classify(BitmapPixels.of(bitmap), TOP_K);
                        post(ResultFormatter.topClasses(r.top, truth), null);
                    }
                } catch (Exception ex) {
                    post(artifact.name + ": " + ex.getMessage());
                }
            }
        });
    }

    private void post(String text) {
        post(text, null);
    }

    private void post(final String text, final Bitmap image) {
        runOnUiThread(new Runnable() {
            @Override
            public void run() {
                results.setText(text);
                if (image != null) {
                    preview.setImageBitmap(image);
                }
                showLatency();
            }
        });
    }
}
