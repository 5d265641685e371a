-- Let a paused canary go on (spec.canary.paused: false).
if obj.spec.canary == nil then
  obj.spec.canary = {}
end
obj.spec.canary.paused = false
return obj
