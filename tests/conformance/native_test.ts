import { nativeFactory } from "../../drivers/native/factory.ts";
import { defineDriverConformance } from "./driver_suite.ts";

defineDriverConformance({
  name: "native",
  createDriver: (ctx) => nativeFactory.create({}, ctx),
  maintenance: (ctx) => nativeFactory.maintenance!({}, ctx),
  absoluteMounts: false,
});
