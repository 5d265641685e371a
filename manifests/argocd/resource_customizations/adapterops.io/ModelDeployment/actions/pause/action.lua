-- Hold the canary at its current step (spec.canary.paused: true). The Suspended condition says so.
if obj.spec.canary == nil then
  obj.spec.canary = {}
end
obj.spec.canary.paused = true
return obj
