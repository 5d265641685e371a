-- Suspend the sweep: no new trial starts; trials already running finish (spec.suspend: true).
obj.spec.suspend = true
return obj
