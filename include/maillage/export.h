/*  export.h: symbol visibility. libmaillage is built with hidden
    symbols; only what is marked MLG_EXPORT is part of its ABI. */

#ifndef MAILLAGE_EXPORT_H
#define MAILLAGE_EXPORT_H

#if defined(MLG_BUILDING_LIBRARY) && defined(__GNUC__)
#define MLG_EXPORT __attribute__((visibility("default")))
#else
#define MLG_EXPORT
#endif

#endif
