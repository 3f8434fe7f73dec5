function value = readFeedback(outDir, runId, trId, timeoutSec)
% READFEEDBACK  Wait for the feedback value of volume trId of run runId.
%   value = readFeedback('C:\feedback', 1, 5, 2.0)
% The rtcloud subject service (rtcloud subject-service -o OUTDIR) writes each result as
%   OUTDIR/run<R>/classoutput/vol-<R>-<T>.txt  (just the value)
%   OUTDIR/run<R>/results/vol-<R>-<T>.json      (all fields, incl. onsetTimeDelayMs)
% Files are renamed into place when complete, so a file that exists is whole.
% Returns NaN when the file does not appear within timeoutSec seconds.
    fname = fullfile(outDir, sprintf('run%d', runId), 'classoutput', ...
                     sprintf('vol-%d-%d.txt', runId, trId));
    value = NaN;
    t0 = tic;
    while toc(t0) < timeoutSec
        if exist(fname, 'file') == 2
            value = str2double(fileread(fname));
            return;
        end
        pause(0.005);
    end
end
