function [value, record] = readFeedback(outDir, runId, trId, timeoutSec)
% READFEEDBACK  The feedback value of volume trId of run runId, at its onset time.
%   value = readFeedback('C:\feedback', 1, 5, 2.0)
%   [value, record] = readFeedback(...)   % record: every field of the result
% The rtcloud subject service (rtcloud subject-service -o OUTDIR) writes each result as
%   OUTDIR/run<R>/classoutput/vol-<R>-<T>.txt  (just the value)
%   OUTDIR/run<R>/results/vol-<R>-<T>.json      (value, onsetTimeDelayMs, timestamp, ...)
% Files are renamed into place when complete, so a file that exists is whole.
% Returns at the moment the result should be shown: its arrival (timestamp) plus its
% onsetTimeDelayMs. A result marked late (kept while the service was away, so its moment
% has passed) gives NaN, with record.late true: do not show it as live feedback.
% Returns NaN (and an empty record) when the result does not come within timeoutSec.
    jsonName = fullfile(outDir, sprintf('run%d', runId), 'results', ...
                        sprintf('vol-%d-%d.json', runId, trId));
    value = NaN;
    record = struct();
    t0 = tic;
    while toc(t0) < timeoutSec
        if exist(jsonName, 'file') == 2
            record = jsondecode(fileread(jsonName));
            if isfield(record, 'late') && record.late
                return;
            end
            onset = record.timestamp + record.onsetTimeDelayMs / 1000;
            wait = onset - nowSeconds();
            if wait > 0
                pause(wait);
            end
            if isnumeric(record.value) && ~isempty(record.value)
                value = double(record.value);
            end
            return;
        end
        pause(0.005);
    end
end

function s = nowSeconds()
% Seconds since 1970 (UTC), the clock the subject service stamps results with.
    if exist('OCTAVE_VERSION', 'builtin')
        s = time();
    else
        s = posixtime(datetime('now', 'TimeZone', 'UTC'));
    end
end
